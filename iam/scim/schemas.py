"""What /scim/v2 publishes about itself (RFC 7643 sections 5 to 7): ServiceProviderConfig,
ResourceTypes and Schemas. Every attribute listed here is stored and returned (users.py and
groups.py map each one); anything else a client sends is ignored, as RFC 7643 allows for
attributes a server does not define."""
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SERVICE_PROVIDER_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

MAX_RESULTS = 1000


def attribute(name, type_="string", *, multi=False, required=False, mutability="readWrite", returned="default",
              uniqueness="none", case_exact=False, sub=None, description="", reference_types=None, canonical=None):
    spec = {"name": name, "type": type_, "multiValued": multi, "description": description, "required": required,
            "caseExact": case_exact, "mutability": mutability, "returned": returned, "uniqueness": uniqueness}
    if sub is not None:
        spec["subAttributes"] = sub
    if reference_types:
        spec["referenceTypes"] = reference_types
    if canonical:
        spec["canonicalValues"] = canonical
    return spec


def _meta(resource_type, location):
    return {"resourceType": resource_type, "location": location}


USER_ATTRIBUTES = [
    attribute("userName", required=True, uniqueness="server",
              description="The person's email address (the account's email), or a login name; unique across "
                          "the server."),
    attribute("name", "complex", description="The person's name.", sub=[
        attribute("givenName", description="First name."),
        attribute("familyName", description="Last name."),
        attribute("middleName", description="Middle name."),
    ]),
    attribute("displayName", description="The name to show."),
    attribute("active", "boolean", required=True,
              description="Whether the account may sign in (true when a creation leaves it out); false ends its "
                          "sessions."),
    attribute("emails", "complex", multi=True, required=True,
              description="The account's email (primary, work) and one more; needed when userName is no address.",
              sub=[attribute("value", required=True),
                   attribute("type", mutability="readOnly", returned="request", canonical=["work", "other"],
                             description="work: the account's email; other: the second one."),
                   attribute("primary", "boolean", mutability="readOnly", returned="request",
                             description="The account's email is the primary one.")]),
    attribute("groups", "complex", multi=True, mutability="readOnly", description="The groups of the account.",
              sub=[attribute("value", mutability="readOnly"), attribute("display", mutability="readOnly"),
                   attribute("$ref", "reference", mutability="readOnly", reference_types=["Group"])]),
]
ENTERPRISE_ATTRIBUTES = [
    attribute("employeeNumber", description="The employee number."),
    attribute("department", description="The department."),
    attribute("manager", "complex", description="The manager: another user of the organization.", sub=[
        attribute("value", description="The manager's id."),
        attribute("$ref", "reference", reference_types=["User"]),
        attribute("displayName", mutability="readOnly"),
    ]),
]
GROUP_ATTRIBUTES = [
    attribute("displayName", required=True, uniqueness="server",
              description="The group's name, unique in the organization."),
    attribute("members", "complex", multi=True, description="The group's users.", sub=[
        attribute("value", mutability="immutable"),
        attribute("type", mutability="immutable", canonical=["User"]),
        attribute("$ref", "reference", mutability="immutable", reference_types=["User"]),
    ]),
]
def schemas(base):
    documents = [
        (USER, "User", "User accounts, with their people", USER_ATTRIBUTES),
        (ENTERPRISE, "EnterpriseUser", "The enterprise extension", ENTERPRISE_ATTRIBUTES),
        (GROUP, "Group", "Groups of the organization", GROUP_ATTRIBUTES),
    ]
    return [{"schemas": [SCHEMA], "id": urn, "name": name, "description": description, "attributes": attrs,
             "meta": _meta("Schema", f"{base}/Schemas/{urn}")} for urn, name, description, attrs in documents]


def resource_types(base):
    return [
        {"schemas": [RESOURCE_TYPE], "id": "User", "name": "User", "endpoint": "/Users",
         "description": "User accounts", "schema": USER,
         "schemaExtensions": [{"schema": ENTERPRISE, "required": False}],
         "meta": _meta("ResourceType", f"{base}/ResourceTypes/User")},
        {"schemas": [RESOURCE_TYPE], "id": "Group", "name": "Group", "endpoint": "/Groups",
         "description": "Groups", "schema": GROUP, "schemaExtensions": [],
         "meta": _meta("ResourceType", f"{base}/ResourceTypes/Group")},
    ]


def service_provider_config(base):
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "API key",
            "description": "Authorization: Bearer <API key> of a key made with scopes {\"scim\": true}",
            "primary": True}],
        "meta": _meta("ServiceProviderConfig", f"{base}/ServiceProviderConfig"),
    }

