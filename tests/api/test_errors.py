"""Every error status with its JSON:API error body (API.md sections 1-3)."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from iam.auth.tokens import issue_access_token
from tests.helpers import API, ApiClient, assert_jsonapi, error_of


def org_body(type_="organizations", id_=None, **attributes):
    attributes.setdefault("name", "Acme")
    attributes.setdefault("slug", "acme")
    data = {"type": type_, "attributes": attributes}
    if id_ is not None:
        data["id"] = id_
    return {"data": data}


def check_error(error, status, code=None):
    assert error["status"] == str(status)
    assert isinstance(error["detail"], str) and error["detail"]
    if code is not None:
        assert error["code"] == code, error


# ---------------------------------------------------------------- 400: query parameters

BAD_QUERIES = [
    # unknown parameters, families and brackets
    ({"foo": "1"}, "foo"),
    ({"filter[emial]": "x"}, "filter[emial]"),
    ({"fiter[email]": "x"}, "fiter[email]"),
    ({"page[numbr]": "1"}, "page[numbr]"),
    # operator that does not fit the type
    ({"filter[enabled__match]": "x"}, "filter[enabled__match]"),
    # values that do not parse
    ({"filter[id]": "abc"}, "filter[id]"),
    ({"filter[id__in][]": ["1", "abc"]}, "filter[id__in][]"),
    ({"filter[created_at__gte]": "yesterday"}, "filter[created_at__gte]"),
    ({"filter[enabled]": "maybe"}, "filter[enabled]"),
    # sort, included, fields
    ({"sort": "nosuch"}, "sort"),
    ({"sort": "email,-nosuch"}, "sort"),
    ({"included": "nosuch"}, "included"),
    ({"include": "person.nosuch"}, "include"),
    ({"fields[nosuch]": "x"}, "fields[nosuch]"),
    ({"fields[accounts]": "email,nosuch"}, "fields[accounts]"),
    # paging and count
    ({"page[size]": "1001"}, "page[size]"),
    ({"page[size]": "0"}, "page[size]"),
    ({"page[number]": "-1"}, "page[number]"),
    ({"page[number]": "x"}, "page[number]"),
    ({"page[number]": "0"}, "page[number]"),
    ({"count": "maybe"}, "count"),
]


@pytest.mark.parametrize("params,parameter", BAD_QUERIES, ids=[p for _, p in BAD_QUERIES])
def test_bad_query_parameter_is_400_naming_it(admin, params, parameter):
    error = error_of(admin.get("/accounts", params), 400)
    check_error(error, 400)
    assert error["source"] == {"parameter": parameter}


def test_page_size_1000_is_allowed(admin):
    assert_jsonapi(admin.get("/accounts", {"page[size]": "1000"}), 200)


def test_bad_query_on_single_resource_is_400(admin, admin_account):
    error = error_of(admin.get(f"/accounts/{admin_account.id}", {"included": "nosuch"}), 400)
    assert error["source"] == {"parameter": "included"}


def test_malformed_json_body_is_400_with_pointer(admin):
    error = error_of(admin.post("/organizations", raw='{"data": {"type": "organizations",'), 400)
    check_error(error, 400)
    assert "pointer" in error["source"]


# ---------------------------------------------------------------- 401, 403, 404, 405

def expired_token(app, account):
    with app.test_request_context():
        return issue_access_token(account.id, 1, now=datetime.now(timezone.utc) - timedelta(days=1))[0]


@pytest.mark.parametrize("token", [None, "garbage", "expired"])
def test_bad_credentials_are_401(app, factory, token):
    if token == "expired":
        token = expired_token(app, factory.account())
    response = ApiClient(app.test_client(), token).get("/accounts")
    check_error(error_of(response, 401), 401, "unauthenticated")
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


def test_plain_account_is_403(user):
    body = {"data": {"type": "organizations", "attributes": {"name": "Acme", "slug": "acme"}}}
    check_error(error_of(user.post("/organizations", body), 403), 403, "forbidden")


@pytest.mark.parametrize("path", ["/accounts/999999", "/organizations/999999", "/accounts/999999/roles",
                                  "/accounts/999999/relationships/person", "/nosuch", "/accounts/abc"])
def test_unknown_id_or_path_is_404(admin, path):
    check_error(error_of(admin.get(path), 404), 404, "not_found")


def test_unknown_id_on_write_is_404(admin):
    body = org_body(id_="999999", name="x")
    check_error(error_of(admin.patch("/organizations/999999", body), 404), 404, "not_found")
    check_error(error_of(admin.delete("/organizations/999999"), 404), 404, "not_found")


def test_unsupported_method_is_405_with_allow(admin):
    response = admin.client.put(API + "/accounts", data="{}", headers=admin.headers(body=True))
    check_error(error_of(response, 405), 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed and "PUT" not in allowed


# ---------------------------------------------------------------- 406 and 415

@pytest.mark.parametrize("accept", [
    "application/vnd.api+json; charset=utf-8",
    "application/vnd.api+json; version=1",
    "application/vnd.api+json; charset=utf-8, text/html;q=0",
])
def test_unacceptable_accept_is_406(admin, accept):
    error = error_of(admin.get("/accounts", headers={"Accept": accept}), 406)
    check_error(error, 406)


@pytest.mark.parametrize("accept", [
    "application/json", "*/*", "application/vnd.api+json",
    'application/vnd.api+json; profile="https://example.com/p"',
    "application/vnd.api+json; charset=utf-8, application/vnd.api+json",
])
def test_acceptable_accept_is_fine(admin, accept):
    assert_jsonapi(admin.get("/accounts", headers={"Accept": accept}), 200)


@pytest.mark.parametrize("content_type", ["text/plain", "application/vnd.api+json; charset=utf-8",
                                          "application/x-www-form-urlencoded",
                                          "application/vnd.api+json; ext=\"https://example.com/e\""])
def test_unsupported_body_media_type_is_415(admin, content_type):
    response = admin.post("/organizations", org_body(), headers={"Content-Type": content_type})
    check_error(error_of(response, 415), 415)
    assert admin.get("/organizations", {"count": "true"}).get_json()["meta"]["count"] == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json",
                                          "application/vnd.api+json; profile=\"https://example.com/p\""])
def test_accepted_body_media_types(admin, content_type):
    response = admin.post("/organizations", org_body(), headers={"Content-Type": content_type})
    body = assert_jsonapi(response, 201)
    assert body["data"]["attributes"]["slug"] == "acme"


# ---------------------------------------------------------------- 409

def test_type_mismatch_on_post_is_409(admin):
    error = error_of(admin.post("/organizations", org_body(type_="people")), 409)
    check_error(error, 409, "type_mismatch")
    assert error["source"]["pointer"] == "/data/type"


def test_type_mismatch_on_patch_is_409(admin, factory):
    org = factory.organization()
    body = org_body(type_="accounts", id_=str(org.id), name="x")
    check_error(error_of(admin.patch(f"/organizations/{org.id}", body), 409), 409, "type_mismatch")


def test_id_mismatch_on_patch_is_409(admin, factory):
    org, other = factory.organization(name="one"), factory.organization()
    body = org_body(id_=str(other.id), name="renamed")
    del body["data"]["attributes"]["slug"]
    error = error_of(admin.patch(f"/organizations/{org.id}", body), 409)
    check_error(error, 409)
    assert error["source"]["pointer"] == "/data/id"
    assert admin.get(f"/organizations/{org.id}").get_json()["data"]["attributes"]["name"] == "one"


def test_taken_unique_value_is_409(admin, factory):
    factory.organization(slug="acme")
    error = error_of(admin.post("/organizations", org_body(slug="acme")), 409)
    check_error(error, 409, "not_unique")


def test_pulse_type_alias_in_body_is_accepted(admin):
    body = assert_jsonapi(admin.post("/organizations", org_body(type_="iam/organizations")), 201)
    assert body["data"]["type"] == "organizations"


# ---------------------------------------------------------------- 412, 413, 422, 403 client id

def test_if_match_mismatch_is_412(admin, factory):
    org = factory.organization(name="kept")
    body = org_body(id_=str(org.id), name="changed")
    del body["data"]["attributes"]["slug"]
    response = admin.patch(f"/organizations/{org.id}", body, headers={"If-Match": '"organizations-0-v0"'})
    check_error(error_of(response, 412), 412)
    assert admin.get(f"/organizations/{org.id}").get_json()["data"]["attributes"]["name"] == "kept"


def test_body_over_one_mebibyte_is_413(admin):
    raw = json.dumps(org_body(name="x" * (1024 * 1024)))
    check_error(error_of(admin.post("/organizations", raw=raw), 413), 413)


def test_uri_over_the_limit_is_414(admin, client):
    from iam.jsonapi.query import MAX_URI_LENGTH
    path = f"{API}/organizations"
    fits = "x" * (MAX_URI_LENGTH - len(path) - len("filter%5Bname%5D="))  # the query string as sent
    assert admin.get("/organizations", {"filter[name]": fits}).status_code == 200
    check_error(error_of(admin.get("/organizations", {"filter[name]": fits + "x"}), 414), 414, "uri_too_long")
    # on public endpoints too, before anything else is looked at
    check_error(error_of(client.get(f"{API}/account/passwords/token_valid?token={'t' * MAX_URI_LENGTH}"), 414), 414)


def test_one_422_error_per_invalid_field(admin):
    response = admin.post("/organizations", org_body(name="", slug="not a slug!"))
    body = assert_jsonapi(response, 422)
    pointers = sorted(e["source"]["pointer"] for e in body["errors"])
    assert pointers == ["/data/attributes/name", "/data/attributes/slug"]
    for error in body["errors"]:
        check_error(error, 422)


def test_client_generated_id_is_403(admin):
    error = error_of(admin.post("/organizations", org_body(id_="123")), 403)
    check_error(error, 403)
    assert admin.get("/organizations/123").status_code == 404


# ---------------------------------------------------------------- never a 500

def assert_clean_4xx(response):
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    body = assert_jsonapi(response)
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.mark.parametrize("params", [
    {"filter[email]": "a\x00b"},
    {"filter[email__match]": "\x00"},
    {"filter[id]": "2147483648"},
    {"filter[id__in]": "1,99999999999999999999"},
    {"filter[id__gt]": "-2147483649"},
    {"filter[person_id]": "9" * 30},
    {"filter[created_at]": "9999-12-31T23:59:59-23:59"},
    {"sort": "email\x00"},
    {"included": "person\x00"},
])
def test_hostile_filters_are_a_clean_400(admin, params):
    assert assert_clean_4xx(admin.get("/accounts", params))["errors"][0]["status"] == "400"


@pytest.mark.parametrize("path", ["/accounts/2147483648", "/accounts/99999999999999999999",
                                  "/accounts/2147483648/roles", "/accounts/-1"])
def test_out_of_range_id_in_url_is_404(admin, path):
    check_error(error_of(admin.get(path), 404), 404)


def test_out_of_range_id_on_write_is_404(admin):
    body = org_body(id_="2147483648", name="x")
    assert error_of(admin.patch("/organizations/2147483648", body), 404)
    assert error_of(admin.delete("/organizations/2147483648"), 404)


@pytest.mark.parametrize("raw", [
    '{"data": {"type": "organizations", "attributes": {"name": "a\\u0000b", "slug": "nul"}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "x", "slug": "x", "quota_limit": NaN}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "x", "slug": "x", "quota_limit": Infinity}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "x", "slug": "x", "quota_limit": 1e400}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "x", "slug": "x", "quota_limit": 1e10}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "x", "slug": "x", "quota_limit": 2147483648}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "\\ud800", "slug": "x"}}}',
    '{"data": {"type": "organizations", "attributes": {"name": "x", "slug": "x"}, "relationships": '
    '{"accounts": {"data": [{"type": "accounts", "id": "99999999999999999999"}]}}}}',
    '[1, 2]',
    '"just a string"',
    '{"data": null}',
    b'\xff\xfe{}',
])
def test_hostile_bodies_are_a_clean_4xx(admin, raw):
    assert_clean_4xx(admin.post("/organizations", raw=raw))
    assert admin.get("/organizations", {"count": "true"}).get_json()["meta"]["count"] == 0


def test_hostile_patch_bodies_are_a_clean_4xx(admin, factory):
    org = factory.organization(name="kept")
    raw = ('{"data": {"type": "organizations", "id": "%d", "attributes": {"quota_limit": -Infinity, '
           '"name": "a\\u0000"}}}' % org.id)
    assert_clean_4xx(admin.patch(f"/organizations/{org.id}", raw=raw))
    assert admin.get(f"/organizations/{org.id}").get_json()["data"]["attributes"]["name"] == "kept"


def test_to_one_relationships_take_only_patch(admin, admin_account):
    """POST/DELETE are to-many verbs: on a to-one relationship they are a 405 naming what is allowed."""
    for method in ("post", "delete"):
        response = getattr(admin, method)(f"/accounts/{admin_account.id}/relationships/person")
        error = error_of(response, 405)
        assert error["code"] == "method_not_allowed" and "PATCH" in response.headers["Allow"]


def test_whole_numbers_beyond_64_bits_are_refused_and_64_bit_ones_read_back_exactly(client, factory):
    """Stored JSON is read back with orjson and answers are written with it: both handle whole
    numbers within 64 bits exactly, and would turn a larger one into a float (or fail), so such
    a number is refused at the door instead of coming back changed."""
    me = ApiClient(client.client, factory.token(factory.account(email="numbers@example.com")))
    too_big = '{"data": {"type": "accounts", "attributes": {"preferences": {"n": 18446744073709551616}}}}'
    error = error_of(me.patch("/accounts/me", raw=too_big), 422)
    assert error["code"] == "invalid_value"
    assert error["source"]["pointer"] == "/data/attributes/preferences/n"
    edges = {"smallest": -2 ** 63, "largest_signed": 2 ** 63 - 1, "largest": 2 ** 64 - 1}
    assert_jsonapi(me.patch("/accounts/me", {"data": {"type": "accounts", "attributes": {"preferences": edges}}}), 200)
    assert assert_jsonapi(me.get("/accounts/me"), 200)["data"]["attributes"]["preferences"] == edges
