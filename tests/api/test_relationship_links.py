"""A required link given as a to-one relationship (issue 11, item 2; API.md section 1).

A to-one relationship in `data.relationships` and its `*_id` attribute are two spellings of one
value: either satisfies a required link. Standard JSON:API clients (kitsu, devour-client,
@orbit/jsonapi, EmberData, jsona, ...) send only the relationship. Every resource with such a link is
created here through raw HTTP and through a third-party client library (jsonapi-client, PyPI)
against a live server; then the errors around it, the unit's organization a person takes, a
tenant's reach through the relationship, and what the OpenAPI document says.
"""
import jsonschema
import pytest
import requests
from jsonapi_client import Session

from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of


def link(type_, id_):
    return {"data": {"type": type_, "id": str(id_)}}


def body(type_, attributes=None, **relationships):
    data = {"type": type_}
    if attributes is not None:
        data["attributes"] = attributes
    if relationships:
        data["relationships"] = relationships
    return {"data": data}


@pytest.fixture
def world(factory):
    org, other = factory.organization(slug="acme"), factory.organization(slug="other")
    unit = factory.unit(org, "sales")
    person = factory.person(org, first_name="Ada")
    holder = factory.account(email="holder@example.com", organization_id=org.id)
    return dict(org=org, other=other, unit=unit, person=person, holder=holder)


# What each resource is created with: (attributes, {relationship: (type, world key)}, what it then holds).
CASES = {
    "people": ({"first_name": "Grace"}, {"organization": ("organizations", "org")},
               {"organization_id": "org"}),
    "organizational_units": ({"name": "emea"}, {"organization": ("organizations", "org"),
                                                "parent": ("organizational_units", "unit")},
                             {"organization_id": "org", "parent_id": "unit"}),
    "groups": ({"name": "ops"}, {"organization": ("organizations", "org")}, {"organization_id": "org"}),
    "account_roles": ({"name": "viewer"}, {"account": ("accounts", "holder")}, {"account_id": "holder"}),
    "accounts": ({"email": "grace@example.com"}, {"person": ("people", "person"),
                                                  "organization": ("organizations", "org")},
                 {"person_id": "person", "organization_id": "org"}),
    "invitations": ({"email": "grace@example.com"}, {"organization": ("organizations", "org")},
                    {"organization_id": "org"}),
}


@pytest.fixture
def mail(app, smtp_inbox):
    """Invitations are mailed: to a real SMTP server here, so nothing is left to a log."""
    return smtp_inbox


def check_created(data, type_, world, holds):
    assert data["type"] == type_
    for attribute, key in holds.items():
        assert data["attributes"][attribute] == world[key].id, attribute
    for name, linkage in data["relationships"].items():
        if name + "_id" in holds:
            assert linkage["data"]["id"] == str(world[holds[name + "_id"]].id), name


# ------------------------------------------------------------------ raw HTTP

def test_the_issue_s_body_creates_a_person(admin, world):
    """The exact document the six JavaScript libraries send (it was a 422 `organization_id is required`)."""
    org = world["org"]
    response = admin.post("/people", {"data": {"type": "people", "attributes": {"first_name": "Grace"},
                                               "relationships": {"organization": link("organizations", org.id)}}})
    data = assert_jsonapi(response, 201)["data"]
    assert data["attributes"]["organization_id"] == org.id and data["attributes"]["first_name"] == "Grace"
    assert data["relationships"]["organization"]["data"] == {"type": "organizations", "id": str(org.id)}
    stored = assert_jsonapi(admin.get(f"/people/{data['id']}"), 200)["data"]
    assert stored["attributes"]["organization_id"] == org.id


@pytest.mark.parametrize("type_", sorted(CASES))
def test_every_required_link_may_be_given_only_as_a_relationship(admin, world, mail, type_):
    attributes, relationships, holds = CASES[type_]
    links = {name: link(target, world[key].id) for name, (target, key) in relationships.items()}
    data = assert_jsonapi(admin.post(f"/{type_}", body(type_, attributes, **links)), 201)["data"]
    check_created(data, type_, world, holds)
    stored = assert_jsonapi(admin.get(f"/{type_}/{data['id']}"), 200)["data"]
    check_created(stored, type_, world, holds)


def test_the_pulse_spelling_of_the_target_type_is_accepted(admin, world):
    holder = world["holder"]
    response = admin.post("/account_roles", body("account_roles", {"name": "viewer"},
                                                 account=link("iam/accounts", holder.id)))
    assert assert_jsonapi(response, 201)["data"]["attributes"]["account_id"] == holder.id


def test_attribute_and_relationship_agreeing_are_one_value(admin, world):
    org = world["org"]
    response = admin.post("/groups", body("groups", {"name": "ops", "organization_id": org.id},
                                          organization=link("organizations", org.id)))
    assert assert_jsonapi(response, 201)["data"]["attributes"]["organization_id"] == org.id


# ------------------------------------------------------------------ errors

def test_attribute_and_relationship_disagreeing_is_422(admin, world):
    response = admin.post("/groups", body("groups", {"name": "ops", "organization_id": world["org"].id},
                                          organization=link("organizations", world["other"].id)))
    error = error_of(response, 422)
    assert error["source"] == {"pointer": "/data/relationships/organization/data"}
    assert "disagree" in error["detail"]


@pytest.mark.parametrize("type_,attributes,pointer", [
    ("people", {"first_name": "Grace"}, "/data/attributes/organization_id"),
    ("organizational_units", {"name": "emea"}, "/data/attributes/organization_id"),
    ("groups", {"name": "ops"}, "/data/attributes/organization_id"),
    ("account_roles", {"name": "viewer"}, "/data/attributes/account_id"),
    ("invitations", {"email": "grace@example.com"}, "/data/attributes/organization_id"),
])
def test_neither_spelling_is_422_required_at_the_attribute(admin, world, type_, attributes, pointer):
    error = error_of(admin.post(f"/{type_}", body(type_, attributes)), 422)
    assert error["code"] == "required" and error["source"] == {"pointer": pointer}


def test_a_null_relationship_for_a_required_link_is_422(admin, world):
    response = admin.post("/groups", body("groups", {"name": "ops"}, organization={"data": None}))
    error = error_of(response, 422)
    assert error["source"] == {"pointer": "/data/relationships/organization/data"}
    assert "required" in error["detail"]


def test_a_null_relationship_for_a_required_link_is_422_on_update_too(admin, world):
    created = admin.post("/groups", body("groups", {"name": "ops", "organization_id": world["org"].id}))
    group_id = assert_jsonapi(created, 201)["data"]["id"]
    patch = {"data": {"type": "groups", "id": group_id, "relationships": {"organization": {"data": None}}}}
    error = error_of(admin.patch(f"/groups/{group_id}", patch), 422)
    assert error["source"] == {"pointer": "/data/relationships/organization/data"}
    stored = assert_jsonapi(admin.get(f"/groups/{group_id}"), 200)["data"]
    assert stored["attributes"]["organization_id"] == world["org"].id


def test_a_required_link_cannot_be_emptied_at_its_relationship_endpoint(admin, world):
    """`PATCH /people/:id/relationships/organization {"data": null}` reached the database's NOT NULL
    and answered a 409; it is the same 422 as in a body, and nothing changes."""
    person = world["person"]
    response = admin.patch(f"/people/{person.id}/relationships/organization", {"data": None})
    error = error_of(response, 422)
    assert error["code"] == "invalid_value" and error["source"] == {"pointer": "/data"}
    stored = assert_jsonapi(admin.get(f"/people/{person.id}"), 200)["data"]
    assert stored["attributes"]["organization_id"] == world["org"].id
    # A nullable one may be emptied there.
    assert admin.patch(f"/people/{person.id}/relationships/organizational_unit", {"data": None}).status_code == 204


def test_a_nullable_link_may_be_cleared_through_its_relationship(admin, world, factory):
    person = factory.person(world["org"], organizational_unit_id=world["unit"].id)
    patch = {"data": {"type": "people", "id": str(person.id),
                      "relationships": {"organizational_unit": {"data": None}}}}
    data = assert_jsonapi(admin.patch(f"/people/{person.id}", patch), 200)["data"]
    assert data["attributes"]["organizational_unit_id"] is None


def test_a_relationship_of_another_type_is_409_type_mismatch(admin, world):
    """As for data.type and at the relationship endpoint: 409 type_mismatch."""
    response = admin.post("/people", body("people", {"first_name": "Grace"},
                                          organization=link("organizational_units", world["unit"].id)))
    error = error_of(response, 409)
    assert error["code"] == "type_mismatch"
    assert error["source"] == {"pointer": "/data/relationships/organization/data/type"}


@pytest.mark.parametrize("linkage,pointer", [
    ({"type": "organizations", "id": 1}, "/data/relationships/organization/data/id"),
    ({"type": "organizations"}, "/data/relationships/organization/data/id"),
    ({"id": "1"}, "/data/relationships/organization/data/type"),
    ("1", "/data/relationships/organization/data"),
    ([{"type": "organizations", "id": "1"}], "/data/relationships/organization/data"),
])
def test_a_linkage_that_is_no_resource_identifier_is_400(admin, world, linkage, pointer):
    error = error_of(admin.post("/people", body("people", {}, organization={"data": linkage})), 400)
    assert error["code"] == "invalid_document" and error["source"] == {"pointer": pointer}


@pytest.mark.parametrize("id_", ["abc", "99999999999", "0", "-1", "999999"])
def test_an_id_no_row_has_is_422_not_found_at_the_relationship(admin, world, id_):
    error = error_of(admin.post("/people", body("people", {}, organization=link("organizations", id_))), 422)
    assert error["code"] == "not_found"
    assert error["source"] == {"pointer": "/data/relationships/organization/data"}


def test_a_relationship_of_a_read_only_link_stays_refused(admin, world):
    response = admin.post("/people", body("people", {"organization_id": world["org"].id},
                                          account=link("accounts", world["holder"].id)))
    assert error_of(response, 422)["code"] == "read_only"


# ------------------------------------------------------------------ a person in a unit

@pytest.mark.parametrize("spelling", ["attribute", "relationship"])
def test_a_person_created_in_a_unit_takes_the_unit_s_organization(admin, world, spelling):
    unit = world["unit"]
    document = (body("people", {"first_name": "Grace", "organizational_unit_id": unit.id}) if spelling == "attribute"
                else body("people", {"first_name": "Grace"},
                          organizational_unit=link("organizational_units", unit.id)))
    data = assert_jsonapi(admin.post("/people", document), 201)["data"]
    assert data["attributes"]["organization_id"] == world["org"].id
    assert data["attributes"]["organizational_unit_id"] == unit.id
    assert data["relationships"]["organization"]["data"] == {"type": "organizations", "id": str(world["org"].id)}


def test_a_unit_and_an_organization_must_still_agree(admin, world):
    response = admin.post("/people", body("people", {"organization_id": world["other"].id},
                                          organizational_unit=link("organizational_units", world["unit"].id)))
    error = error_of(response, 422)
    assert error["source"] == {"pointer": "/data/relationships/organizational_unit/data"}


def test_a_unit_of_null_does_not_stand_for_the_organization(admin, world):
    error = error_of(admin.post("/people", body("people", {"organizational_unit_id": None})), 422)
    assert error["code"] == "required" and error["source"] == {"pointer": "/data/attributes/organization_id"}
    error = error_of(admin.post("/people", body("people", {}, organizational_unit={"data": None})), 422)
    assert error["code"] == "required" and error["source"] == {"pointer": "/data/attributes/organization_id"}


def test_a_missing_unit_is_422_not_found_at_the_unit(admin, world):
    response = admin.post("/people", body("people", {}, organizational_unit=link("organizational_units", 999999)))
    error = error_of(response, 422)
    assert error["code"] == "not_found"
    assert error["source"] == {"pointer": "/data/relationships/organizational_unit/data"}


# ------------------------------------------------------------------ a tenant's reach

@pytest.fixture
def org_admin(app, factory, world):
    account = factory.account(email="boss@acme.example", organization_id=world["org"].id,
                              roles=[{"name": "org_admin", "scopes": {"organization": [world["org"].id]}}])
    return ApiClient(app.test_client(), factory.token(account))


def test_another_tenant_s_organization_is_not_found_through_either_spelling(org_admin, world):
    other = world["other"]
    by_attribute = error_of(org_admin.post("/people", body("people", {"organization_id": other.id})), 422)
    by_relationship = error_of(org_admin.post("/people", body(
        "people", {}, organization=link("organizations", other.id))), 422)
    assert by_attribute["code"] == by_relationship["code"] == "not_found"
    assert by_attribute["detail"] == by_relationship["detail"]
    assert by_attribute["source"] == {"pointer": "/data/attributes/organization_id"}
    assert by_relationship["source"] == {"pointer": "/data/relationships/organization/data"}
    # Its own organization, by relationship, is fine.
    mine = org_admin.post("/people", body("people", {}, organization=link("organizations", world["org"].id)))
    assert assert_jsonapi(mine, 201)["data"]["attributes"]["organization_id"] == world["org"].id


def test_another_tenant_s_unit_is_not_found_and_gives_no_organization(org_admin, factory, world):
    foreign_unit = factory.unit(world["other"], "theirs")
    response = org_admin.post("/people", body("people", {}, organizational_unit=link("organizational_units",
                                                                                     foreign_unit.id)))
    error = error_of(response, 422)
    assert error["code"] == "not_found"
    assert error["source"] == {"pointer": "/data/relationships/organizational_unit/data"}
    # Its own unit gives its own organization.
    mine = org_admin.post("/people", body("people", {"organizational_unit_id": world["unit"].id}))
    assert assert_jsonapi(mine, 201)["data"]["attributes"]["organization_id"] == world["org"].id


# ------------------------------------------------------------------ the OpenAPI document

@pytest.fixture
def openapi(admin):
    response = admin.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def create_request_validator(openapi, type_):
    name = "".join(part.capitalize() for part in type_.split("_"))
    schema = {"$ref": f"#/components/schemas/{name}CreateRequest", "components": openapi["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("type_,link_attribute", [
    ("people", "organization_id"), ("organizational_units", "organization_id"), ("groups", "organization_id"),
    ("account_roles", "account_id"), ("invitations", "organization_id"),
])
def test_the_document_says_either_spelling_satisfies_a_required_link(openapi, type_, link_attribute):
    schemas = openapi["components"]["schemas"]
    name = "".join(part.capitalize() for part in type_.split("_"))
    data = schemas[f"{name}CreateRequest"]["properties"]["data"]
    assert link_attribute not in data["properties"]["attributes"].get("required", [])
    assert "Required on create" in data["properties"]["attributes"]["properties"][link_attribute]["description"]
    attributes, relationships, _ = CASES[type_]
    validator = create_request_validator(openapi, type_)
    links = {name: link(target, 1) for name, (target, _) in relationships.items()}
    assert validator.is_valid(body(type_, attributes, **links))
    by_attribute = {**attributes, **{f"{name}_id": 1 for name in relationships}}
    assert validator.is_valid(body(type_, by_attribute))
    assert not validator.is_valid(body(type_, attributes))
    # A required link is never null through its relationship.
    required_rel = next(name for name in relationships if f"{name}_id" == link_attribute)
    assert not validator.is_valid(body(type_, attributes, **{required_rel: {"data": None}}))


def test_the_document_says_a_unit_stands_for_a_person_s_organization(openapi):
    validator = create_request_validator(openapi, "people")
    assert validator.is_valid(body("people", {"organizational_unit_id": 3}))
    assert validator.is_valid(body("people", {}, organizational_unit=link("organizational_units", 3)))
    assert not validator.is_valid(body("people", {"organizational_unit_id": None}))
    assert not validator.is_valid(body("people", {}, organizational_unit={"data": None}))
    description = openapi["components"]["schemas"]["PeopleCreateRequest"]["properties"]["data"]["properties"][
        "relationships"]["properties"]["organization"]["description"]
    assert "organization_id" in description and "Sets" not in description


# ------------------------------------------------------------------ a third-party client library

LIBRARY_SCHEMA = {
    "people": {"properties": {"first_name": {"type": "string"},
                              "organization": {"relation": "to-one", "resource": ["organizations"]},
                              "organizational_unit": {"relation": "to-one", "resource": ["organizational_units"]}}},
    "organizational_units": {"properties": {
        "name": {"type": "string"},
        "organization": {"relation": "to-one", "resource": ["organizations"]},
        "parent": {"relation": "to-one", "resource": ["organizational_units"]}}},
    "groups": {"properties": {"name": {"type": "string"},
                              "organization": {"relation": "to-one", "resource": ["organizations"]}}},
    "account_roles": {"properties": {"name": {"type": "string"},
                                     "account": {"relation": "to-one", "resource": ["accounts"]}}},
    "accounts": {"properties": {"email": {"type": "string"},
                                "person": {"relation": "to-one", "resource": ["people"]},
                                "organization": {"relation": "to-one", "resource": ["organizations"]}}},
    "invitations": {"properties": {"email": {"type": "string"},
                                   "organization": {"relation": "to-one", "resource": ["organizations"]}}},
}


@pytest.fixture
def library(live_server, admin_account):
    url = f"{live_server}/api/v3/iam"
    login = requests.post(f"{url}/auth/login", json={"email": "admin@example.com", "password": PASSWORD},
                          timeout=10)
    assert login.status_code == 200, login.text
    client = Session(url, schema=LIBRARY_SCHEMA, request_kwargs={
        "headers": {"Authorization": f"Bearer {login.json()['meta']['token']}"}, "timeout": 10})
    yield client
    client.close()


@pytest.mark.parametrize("type_", sorted(CASES))
def test_a_client_library_creates_every_resource_with_its_links_as_relationships(library, world, mail, type_):
    attributes, relationships, holds = CASES[type_]
    fields = {**attributes, **{name: str(world[key].id) for name, (_, key) in relationships.items()}}
    created = library.create(type_, fields=fields)
    created.commit()
    assert created.id is not None
    fetched = library.get(type_, created.id).resource
    for attribute, key in holds.items():
        assert fetched[attribute] == world[key].id, attribute


def test_a_client_library_creates_a_person_in_a_unit(library, world):
    person = library.create("people", fields={"first_name": "Grace", "organizational_unit": str(world["unit"].id)})
    person.commit()
    fetched = library.get("people", person.id).resource
    assert fetched["organization_id"] == world["org"].id
    assert fetched["organization"]["slug"] == "acme"  # followed through its related link


def test_an_invitation_s_organization_stays_fixed_through_its_relationship_too(admin, world, mail):
    created = admin.post("/invitations", body("invitations", {"email": "grace@example.com"},
                                              organization=link("organizations", world["org"].id)))
    invitation_id = assert_jsonapi(created, 201)["data"]["id"]
    patch = {"data": {"type": "invitations", "id": invitation_id,
                      "relationships": {"organization": link("organizations", world["other"].id)}}}
    error = error_of(admin.patch(f"/invitations/{invitation_id}", patch), 422)
    assert error["code"] == "read_only" and error["source"] == {"pointer": "/data/relationships/organization/data"}
    stored = assert_jsonapi(admin.get(f"/invitations/{invitation_id}"), 200)["data"]
    assert stored["attributes"]["organization_id"] == world["org"].id


def test_links_follow_the_host_and_scheme_each_request_came_by(app, factory, admin_account):
    """The API's base URL is kept per (scheme, host, root path): every request's links still
    name the host it came by, past the bound on how many are kept."""
    from tests.helpers import API

    headers = {"Authorization": f"Bearer {factory.token(admin_account)}", "Accept": "application/vnd.api+json"}
    client = app.test_client()
    for n in range(70):
        for scheme in ("http", "https"):
            host = f"h{n}.example"
            body = client.get(f"{API}/accounts/{admin_account.id}", base_url=f"{scheme}://{host}",
                              headers=headers).get_json()
            assert body["links"]["self"] == f"{scheme}://{host}{API}/accounts/{admin_account.id}", body
            assert body["data"]["links"]["self"].startswith(f"{scheme}://{host}{API}/"), body
