"""Media types and CORS (issue 11): JSON:API extensions, answers without a body, browser origins.

- The server supports no JSON:API extension: an `ext` in a body's Content-Type is a 415, an
  Accept whose JSON:API instances all name unsupported extensions (and no other type we answer
  with) a 406; `profile` is ignored. Answers never name an `ext`.
- A 204 (or 304) has no body and no Content-Type, whichever endpoint answers it.
- IAM_CORS_ORIGINS: allowed origins get the CORS headers on /api/v3/iam, others none at all.
"""
import pytest

from iam.config import ConfigError
from iam.jsonapi.media import SUPPORTED_EXTENSIONS
from tests.helpers import API, JSONAPI, PASSWORD, ApiClient, assert_jsonapi, error_of

UNKNOWN_EXT = 'application/vnd.api+json; ext="https://example.com/unknown"'
ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.com"


def org_body(slug="acme"):
    return {"data": {"type": "organizations", "attributes": {"name": "Acme", "slug": slug}}}


def cors_headers(response):
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


# ---------------------------------------------------------------- extensions

def test_the_server_supports_no_extension_and_says_so():
    assert SUPPORTED_EXTENSIONS == frozenset()


@pytest.mark.parametrize("content_type", [
    UNKNOWN_EXT,
    'application/vnd.api+json; ext="https://example.com/unknown https://example.com/other"',
    'application/vnd.api+json; ext="https://jsonapi.org/ext/atomic"; profile="https://example.com/p"',
])
def test_an_extension_in_content_type_is_415(admin, content_type):
    error = error_of(admin.post("/organizations", org_body(), headers={"Content-Type": content_type}), 415)
    assert error["code"] == "unsupported_media_type"
    assert error["source"] == {"header": "Content-Type"}
    assert "extension" in error["detail"]
    assert admin.get("/organizations", {"count": "true"}).get_json()["meta"]["count"] == 0  # nothing stored


def test_an_extension_in_content_type_is_415_on_patch_too(admin, factory):
    org = factory.organization(slug="acme")
    body = {"data": {"type": "organizations", "id": str(org.id), "attributes": {"name": "Renamed"}}}
    error_of(admin.patch(f"/organizations/{org.id}", body, headers={"Content-Type": UNKNOWN_EXT}), 415)
    assert admin.get(f"/organizations/{org.id}").get_json()["data"]["attributes"]["name"] != "Renamed"


@pytest.mark.parametrize("content_type", [
    'application/vnd.api+json; profile="https://example.com/profiles/unknown"',
    'application/vnd.api+json; profile="https://example.com/a https://example.com/b"',
])
def test_a_profile_alone_is_accepted_and_ignored(admin, content_type):
    response = admin.post("/organizations", org_body(), headers={"Content-Type": content_type})
    assert assert_jsonapi(response, 201)["data"]["attributes"]["slug"] == "acme"
    assert response.headers["Content-Type"] == JSONAPI  # no ext, no profile echoed


@pytest.mark.parametrize("accept", [
    UNKNOWN_EXT,
    f'{UNKNOWN_EXT}; profile="https://example.com/p"',
    f'{UNKNOWN_EXT}, application/vnd.api+json; ext="https://example.com/other"',
    f"{UNKNOWN_EXT}, application/vnd.api+json; charset=utf-8",
    f"{UNKNOWN_EXT}, application/vnd.api+json;q=0",
    f"{UNKNOWN_EXT}, text/html",
])
def test_accept_with_only_unsupported_extensions_is_406(admin, accept):
    error = error_of(admin.get("/accounts", headers={"Accept": accept}), 406)
    assert error["code"] == "not_acceptable"
    assert error["source"] == {"header": "Accept"}


@pytest.mark.parametrize("accept", [
    f"{UNKNOWN_EXT}, application/vnd.api+json",
    f'{UNKNOWN_EXT}, application/vnd.api+json; profile="https://example.com/p"',
    f"{UNKNOWN_EXT}, application/json",
    f"{UNKNOWN_EXT}, */*;q=0.1",
    'application/vnd.api+json; profile="https://example.com/p"',
])
def test_accept_with_unsupported_extensions_and_a_usable_type_is_200(admin, accept):
    response = admin.get("/accounts", headers={"Accept": accept})
    assert_jsonapi(response, 200)
    assert response.headers["Content-Type"] == JSONAPI  # no extension was applied, none is named


def test_the_openapi_document_lists_the_supported_extensions(client):
    document = client.get("/openapi.json").get_json()
    assert document["x-jsonapi-extensions"] == []


# ---------------------------------------------------------------- answers without a body

def assert_no_content(response):
    assert response.status_code == 204, response.get_data(as_text=True)[:500]
    assert "Content-Type" not in response.headers, dict(response.headers)
    assert "Content-Length" not in response.headers, dict(response.headers)
    assert response.get_data() == b""
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # the security headers stay


def test_every_kind_of_204_has_no_content_type_and_no_body(app, admin, factory):
    org = factory.organization(slug="acme")
    assert_no_content(admin.delete(f"/organizations/{org.id}"))  # a resource's DELETE

    other = factory.organization(slug="b")
    group = assert_jsonapi(admin.post("/groups", {"data": {"type": "groups", "attributes": {
        "name": "editors", "organization_id": other.id, "roles": []}}}), 201)["data"]
    member = factory.account(email="member@example.com", organization_id=other.id)
    linkage = {"data": [{"type": "accounts", "id": str(member.id)}]}
    assert_no_content(admin.post(f"/groups/{group['id']}/relationships/members", linkage))  # relationship writes
    assert_no_content(admin.delete(f"/groups/{group['id']}/relationships/members", linkage))

    ada = factory.account(email="ada@example.com")
    ada_client = ApiClient(app.test_client(), factory.token(ada))
    assert_no_content(ada_client.post("/account/passwords/change",  # a password endpoint
                                      {"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
    assert_no_content(ada_client.post("/auth/logout"))


def test_a_304_has_no_content_type(admin, factory):
    org = factory.organization(slug="acme")
    etag = admin.get(f"/organizations/{org.id}").headers["ETag"]
    response = admin.get(f"/organizations/{org.id}", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    assert "Content-Type" not in response.headers and response.get_data() == b""


def test_options_answers_204_with_allow(client):
    response = client.client.options(API + "/accounts")
    assert_no_content(response)
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


# ---------------------------------------------------------------- CORS

PREFLIGHT = {"Access-Control-Request-Method": "PATCH",
             "Access-Control-Request-Headers": "authorization, content-type, if-match, x-request-id"}


def preflight(test_client, origin, path="/accounts/1", **headers):
    """A browser's preflight for a call of `path` (under /api/v3/iam) from `origin`."""
    return test_client.options(API + path, headers={"Origin": origin, **PREFLIGHT, **headers})


def expose_list(response):
    return {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}


def test_a_preflight_from_an_allowed_origin_is_answered(make_app):
    cors_app = make_app(IAM_CORS_ORIGINS=f"{ALLOWED}, http://localhost:3000")
    response = preflight(cors_app.test_client(), ALLOWED)
    assert response.status_code == 204  # not a 404/405, not a 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match", "x-request-id"} <= allowed_headers
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers  # bearer tokens, no cookies
    assert "Origin" in response.headers["Vary"]
    # the security headers of every answer
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in response.headers
    # the second origin, written with its default port and in capitals, matches as browsers send it
    other = preflight(cors_app.test_client(), "http://localhost:3000", "/auth/login",
                      **{"Access-Control-Request-Method": "POST"})
    assert other.status_code == 204 and other.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_real_requests_from_an_allowed_origin_get_the_cors_headers(make_app, factory, admin_account):
    cors_app = make_app(IAM_CORS_ORIGINS=ALLOWED)
    browser = ApiClient(cors_app.test_client(), factory.token(admin_account))
    origin = {"Origin": ALLOWED}

    created = browser.post("/organizations", org_body(), headers=origin)
    assert_jsonapi(created, 201)
    assert created.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {"etag", "location", "retry-after"} <= expose_list(created)
    assert "Location" in created.headers and "ETag" in created.headers

    read = browser.get("/organizations", headers=origin)
    assert_jsonapi(read, 200)
    assert read.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {"etag", "location", "retry-after"} <= expose_list(read)
    assert "Access-Control-Allow-Credentials" not in read.headers
    assert "Origin" in read.headers["Vary"]

    # an error answer is readable by the browser app too
    denied = ApiClient(cors_app.test_client()).get("/accounts", headers=origin)
    assert error_of(denied, 401)
    assert denied.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_a_refused_origin_gets_no_cors_headers(make_app, factory, admin_account):
    cors_app = make_app(IAM_CORS_ORIGINS=ALLOWED)
    response = preflight(cors_app.test_client(), REFUSED)
    assert cors_headers(response) == {}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    browser = ApiClient(cors_app.test_client(), factory.token(admin_account))
    for response in (browser.get("/organizations", headers={"Origin": REFUSED}),
                     browser.post("/organizations", org_body(), headers={"Origin": REFUSED}),
                     # an allowed origin's look-alikes
                     browser.get("/organizations", headers={"Origin": ALLOWED + ".evil.example"}),
                     browser.get("/organizations", headers={"Origin": "http://app.example.com"}),
                     browser.get("/organizations", headers={"Origin": "null"}),
                     # no Origin at all: not a CORS request
                     browser.get("/organizations")):
        assert response.status_code in (200, 201, 409), response.get_data(as_text=True)[:300]
        assert cors_headers(response) == {}, dict(response.headers)


def test_only_the_api_gets_cors_headers(make_app):
    cors_app = make_app(IAM_CORS_ORIGINS=ALLOWED)
    test_client = cors_app.test_client()
    for path in ("/metrics", "/healthz"):
        assert cors_headers(test_client.get(path, headers={"Origin": ALLOWED})) == {}
        assert cors_headers(test_client.options(path, headers={"Origin": ALLOWED, **PREFLIGHT})) == {}


def test_without_iam_cors_origins_nothing_has_cors_headers(admin, client):
    response = client.client.options(API + "/accounts", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert response.status_code == 204 and cors_headers(response) == {}
    response = admin.get("/accounts", headers={"Origin": ALLOWED})
    assert_jsonapi(response, 200)
    assert cors_headers(response) == {}
    assert "Origin" not in response.headers.get("Vary", "")


@pytest.mark.parametrize("value", [
    "*", "https://*.example.com", "https://app.example.com/", "https://app.example.com/path",
    "app.example.com", "https://app.example.com:99999", "https://user@app.example.com", "null",
    "https://app.example.com?x=1", f"{ALLOWED},not an origin",
])
def test_a_bad_iam_cors_origins_stops_create_app(make_app, value):
    with pytest.raises(ConfigError, match="IAM_CORS_ORIGINS"):
        make_app(IAM_CORS_ORIGINS=value)


def test_iam_cors_origins_is_read_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("IAM_CORS_ORIGINS", "https://App.Example.com:443 , http://[::1]:8080")
    cors_app = make_app()
    assert cors_app.config["IAM_CORS_ORIGINS"] == (ALLOWED, "http://[::1]:8080")
    response = preflight(cors_app.test_client(), "http://[::1]:8080")
    assert response.headers["Access-Control-Allow-Origin"] == "http://[::1]:8080"
    monkeypatch.setenv("IAM_CORS_ORIGINS", "https://app.example.com/")
    with pytest.raises(ConfigError, match="no path"):
        make_app()

