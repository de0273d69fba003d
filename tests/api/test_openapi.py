"""GET /openapi.json and /docs (API.md section 7): a valid OpenAPI 3.1 document generated from the
declarations, covering every route, every Pulse filter and no secret, and a docs page that works offline."""
import json
import re

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from iam.jsonapi.openapi import downgrade_to_30
from tests.helpers import API, assert_jsonapi, error_of

# Every filter the contract's accounts section names (the Pulse names).
ACCOUNT_FILTERS = [
    "id", "email", "account_type", "auth_type", "created_at", "updated_at", "expires_at", "password_reset_token",
    "password_reset_token_expires_at", "enabled", "person_id", "organization_id", "id__in", "ou_accounts",
    "role_name", "account_type__in", "created_at__gte", "created_at__lte", "expires_at__gte", "expires_at__lte",
    "email__match", "search",
]
# Stored secrets (model columns) that no document may name.
SECRET_COLUMNS = ["password_hash", "password_reset_token_digest", "key_digest", "token_digest"]
DOCS_STATIC = f"{API}/docs/static/"


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return json.loads(response.get_data(as_text=True))


def resolve(document, item):
    if "$ref" not in item:
        return item
    node = document
    for part in item["$ref"].lstrip("#/").split("/"):
        node = node[part]
    return node


def walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_docs_page_gets_a_valid_3_0_rendition(document):
    """Swagger UI 4 (swagger-ui-bundle 1.x) renders 3.0 only; the page embeds this conversion."""
    validate(downgrade_to_30(document), cls=OpenAPIV30SpecValidator)


def test_every_route_of_the_blueprint_is_documented_with_each_method(app, document):
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/") or rule.rule.startswith(DOCS_STATIC):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len(API):])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing


def test_path_parameters_are_integers(document):
    operation = document["paths"]["/accounts/{id}"]["get"]
    (id_parameter,) = [p for p in operation["parameters"] if p.get("in") == "path"]
    assert id_parameter == {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}


def test_every_pulse_filter_of_accounts_is_a_parameter(document):
    operation = document["paths"]["/accounts"]["get"]
    names = {resolve(document, p)["name"] for p in operation["parameters"]}
    missing = [name for name in ACCOUNT_FILTERS if f"filter[{name}]" not in names]
    assert not missing
    assert {"sort", "page[number]", "page[size]", "count", "include", "included", "fields[accounts]"} <= names


def test_query_parameters_carry_types_enums_and_limits(document):
    listed = document["paths"]["/accounts"]["get"]["parameters"]
    parameters = {p["name"]: p for p in (resolve(document, r) for r in listed)}
    assert parameters["filter[created_at__gte]"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["filter[id__in]"]["schema"]["items"]["type"] == "integer"
    assert set(parameters["filter[account_type__in]"]["schema"]["items"]["enum"]) == {
        "personal_account", "service_account", "local_account"}
    assert parameters["filter[ou_accounts]"]["description"].startswith("Accounts whose person sits")
    assert "-created_at" in parameters["sort"]["schema"]["items"]["enum"]
    assert parameters["page[size]"]["schema"]["minimum"] == 1
    assert parameters["page[size]"]["schema"]["maximum"] == 1000
    assert "person.organizational_unit" in parameters["included"]["schema"]["items"]["enum"]
    assert "password" not in parameters["fields[accounts]"]["schema"]["items"]["enum"]


def test_bodies_and_responses_come_from_the_schemas(document):
    schemas = document["components"]["schemas"]
    attributes = schemas["AccountsAttributes"]["properties"]
    assert attributes["created_at"]["readOnly"] is True
    assert attributes["password"]["writeOnly"] is True
    assert attributes["expires_at"]["type"] == ["string", "null"]
    create = schemas["AccountsCreateRequest"]["properties"]["data"]["properties"]["attributes"]
    assert create["required"] == ["email"] and "created_at" not in create["properties"]
    post = document["paths"]["/accounts"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/vnd.api+json", "application/json"}
    assert {"201", "400", "401", "403", "409", "413", "415", "422"} <= set(post["responses"])
    patch = document["paths"]["/accounts/{id}"]["patch"]
    assert {"200", "404", "412", "422"} <= set(patch["responses"])
    assert patch["responses"]["200"]["content"]["application/vnd.api+json"]["schema"] == {
        "$ref": "#/components/schemas/AccountsDocument"}
    assert "included" in schemas["AccountsCollection"]["properties"]
    assert "errors" in schemas["ErrorDocument"]["properties"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_public_endpoints_need_no_token_and_the_others_do(document):
    paths = document["paths"]
    assert document["security"] == [{"bearer": []}]
    for path, method in [("/auth/login", "post"), ("/auth/refresh", "post"), ("/account/passwords/reset", "post"),
                         ("/account/passwords/request_reset", "post"), ("/account/passwords/token_valid", "get"),
                         ("/openapi.json", "get"), ("/docs", "get")]:
        assert paths[path][method]["security"] == [], (path, method)
    for path, method in [("/accounts", "get"), ("/accounts/me", "patch"), ("/auth/logout", "post"),
                         ("/api_keys/{id}/revoke", "post")]:
        assert "security" not in paths[path][method], (path, method)
    assert "429" in paths["/auth/login"]["post"]["responses"]
    # /accounts/me is limited on PATCH (current-password guesses), not on GET.
    assert "429" in paths["/accounts/me"]["patch"]["responses"]
    assert "429" not in paths["/accounts/me"]["get"]["responses"]


def test_differences_from_json_api_are_documented(document):
    description = document["info"]["description"]
    assert "Deliberate differences from JSON:API" in description
    assert "`included`" in description and "application/json" in description and "_id" in description


def test_no_secret_is_named_or_readable(app, document):
    text = json.dumps(document)
    for name in SECRET_COLUMNS:
        assert name not in text
    assert app.config["SECRET_KEY"] not in text
    for node in walk(document):
        properties = node.get("properties") if isinstance(node, dict) else None
        if isinstance(properties, dict):
            for name, schema in properties.items():
                if "password" in name:
                    assert schema.get("writeOnly") is True, name


def test_openapi_json_needs_no_token_and_is_built_once(app, client):
    first = client.get("/openapi.json")
    second = client.get("/openapi.json")
    assert first.status_code == 200 and "json" in first.mimetype
    assert first.get_data() == second.get_data()
    assert any(key.startswith("openapi:") for key in app.extensions)


def test_the_docs_page_loads_only_local_assets(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "SwaggerUIBundle" in html
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert f"{DOCS_STATIC}swagger-ui-bundle.js" in assets
    for asset in assets:
        assert asset.startswith(API + "/"), asset
        assert client.get(asset).status_code == 200, asset


def test_the_embedded_document_is_the_3_0_rendition(client, document):
    html = client.get("/docs").get_data(as_text=True)
    embedded = re.search(r'<script id="openapi-document" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert json.loads(embedded.group(1)) == downgrade_to_30(document)


def test_docs_static_files_are_served_and_confined(client):
    response = client.get("/docs/static/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert "javascript" in response.mimetype
    assert client.get("/docs/static/../../../../setup.cfg").status_code == 404
    assert client.get("/docs/static/nope.js").status_code == 404


def test_a_token_does_not_change_the_document(admin, client):
    assert admin.get("/openapi.json").get_data() == client.get("/openapi.json").get_data()


# What schemathesis (tests/api/test_schemathesis.py) found the document and the server disagreeing on.

def test_what_the_server_leaves_empty_is_nullable_in_the_document(admin, factory, document):
    account = factory.account(email="new@example.com")
    organization = factory.organization()
    attributes = assert_jsonapi(admin.get(f"/accounts/{account.id}"), 200)["data"]["attributes"]
    assert attributes["last_login_at"] is None and attributes["consent_given_at"] is None
    assert assert_jsonapi(admin.get(f"/organizations/{organization.id}"), 200)["data"]["attributes"][
        "quota_remaining"] is None
    schemas = document["components"]["schemas"]
    for name, attribute in [("Accounts", "last_login_at"), ("Accounts", "consent_given_at"),
                            ("Organizations", "quota_remaining"), ("AccountSessions", "revoked_at"),
                            ("Invitations", "accepted_at"), ("AuditEvents", "organization_id")]:
        assert "null" in schemas[f"{name}Attributes"]["properties"][attribute]["type"], (name, attribute)
    assert schemas["AccountsAttributes"]["properties"]["created_at"]["type"] == "string"


def test_a_create_request_without_its_required_attributes_is_invalid_in_the_document(admin, document):
    body = assert_jsonapi(admin.post("/organizations", {"data": {"type": "organizations"}}), 422)
    assert {e["source"]["pointer"] for e in body["errors"]} == {"/data/attributes/name", "/data/attributes/slug"}
    data = document["components"]["schemas"]["OrganizationsCreateRequest"]["properties"]["data"]
    assert data["required"] == ["type", "attributes"]
    assert data["properties"]["attributes"]["required"] == ["name", "slug"]


def test_other_members_of_data_and_attributes_are_invalid_in_the_document(admin, factory, document):
    organization = factory.organization()
    unknown_member = {"data": {"type": "organizations", "id": str(organization.id), "extra": 1}}
    assert error_of(admin.patch(f"/organizations/{organization.id}", unknown_member), 400)["source"] == {
        "pointer": "/data/extra"}
    unknown_attribute = {"data": {"type": "organizations", "id": str(organization.id), "attributes": {"extra": 1}}}
    error = error_of(admin.patch(f"/organizations/{organization.id}", unknown_attribute), 422)
    assert error["code"] == "unknown_field" and error["source"] == {"pointer": "/data/attributes/extra"}
    for kind in ("CreateRequest", "UpdateRequest"):
        data = document["components"]["schemas"][f"Organizations{kind}"]["properties"]["data"]
        assert data["additionalProperties"] is False
        assert data["properties"]["attributes"]["additionalProperties"] is False


def test_page_links_percent_encode_their_brackets(admin, document):
    links = assert_jsonapi(admin.get("/organizations", {"page[size]": 1}), 200)["links"]
    assert "page%5Bnumber%5D=1" in links["first"]  # a URI reference: [ and ] are not allowed raw
    page_links = document["components"]["schemas"]["PageLinks"]["properties"]
    assert all(page_links[name].get("format") == "uri" for name in ("first", "prev", "next", "last"))
    assert page_links["self"]["format"] == "uri" and "[" not in links["self"]


def test_auth_bodies_are_documented_from_the_schemas_the_server_loads(client, document):
    error = error_of(client.post("/auth/login", {"email": "a@example.com", "password": ""}), 422)
    assert error["source"] == {"pointer": "/password"}
    error = error_of(client.post("/auth/login", {"email": "a@example.com", "password": "x", "extra": 1}), 422)
    assert error["code"] == "unknown_field"
    error = error_of(client.post("/auth/api/login", {}), 422)
    assert error["code"] == "required" and error["source"] == {"pointer": "/key"}
    body = assert_jsonapi(client.post("/invitations/accept", {}), 422)
    assert {e["source"]["pointer"] for e in body["errors"]} == {"/token", "/password"}

    def plain(path):
        return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["anyOf"][0]

    login = plain("/auth/login")
    assert login["required"] == ["email", "password"] and login["additionalProperties"] is False
    assert login["properties"]["password"]["minLength"] == 1 and login["properties"]["password"]["writeOnly"]
    assert plain("/auth/api/login")["anyOf"] == [{"required": ["key"]}, {"required": ["api_key"]}]
    accept = plain("/invitations/accept")
    assert accept["required"] == ["token", "password"] and accept["properties"]["password"]["writeOnly"]
    assert plain("/organizations/{id}/increment")["properties"]["usage"]["maximum"] == 2 ** 31 - 1


def test_null_is_documented_exactly_where_a_filter_takes_it(admin, document):
    parameters = {p["name"]: p for p in (resolve(document, r)
                                         for r in document["paths"]["/accounts"]["get"]["parameters"])}
    assert parameters["filter[expires_at]"]["schema"]["type"] == ["string", "null"]
    assert parameters["filter[id]"]["schema"]["type"] == "integer"
    assert "null" not in parameters["filter[id]"]["description"]
    assert error_of(admin.get("/accounts", {"filter[id]": "null"}), 400)["source"] == {"parameter": "filter[id]"}


def test_lists_and_sorts_document_what_the_server_refuses(admin, document):
    parameters = {p["name"]: p for p in (resolve(document, r)
                                         for r in document["paths"]["/accounts"]["get"]["parameters"])}
    assert parameters["filter[id__in]"]["schema"]["minItems"] == 1
    assert error_of(admin.get("/accounts", {"filter[id__in]": ""}), 400)["source"] == {"parameter": "filter[id__in]"}
    assert "minItems" not in parameters["filter[email__in]"]["schema"]  # "" is an email to compare with
    assert parameters["sort"]["schema"]["uniqueItems"] is True and parameters["sort"]["schema"]["minItems"] == 1
    assert error_of(admin.get("/accounts", {"sort": "email,email"}), 400)["source"] == {"parameter": "sort"}
    assert error_of(admin.get("/accounts", {"sort": ""}), 400)["source"] == {"parameter": "sort"}


def test_a_filter_type_of_a_resource_documents_the_values_it_parses(admin, document):
    parameters = {p["name"]: p for p in (resolve(document, r)
                                         for r in document["paths"]["/account_roles"]["get"]["parameters"])}
    pattern = re.compile(parameters["filter[with_scopes]"]["schema"]["pattern"])
    for value, status in [("ou", 200), ("organization:12", 200), ("team", 400), ("ou:x", 400)]:
        assert bool(pattern.match(value)) == (status == 200), value
        assert admin.get("/account_roles", {"filter[with_scopes]": value}).status_code == status, value
