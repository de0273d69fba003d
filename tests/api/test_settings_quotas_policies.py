"""settings, organization quotas (atomic increments) and the unit policy catalogue."""
import threading

import pytest

from tests.helpers import ApiClient, assert_jsonapi, error_of


# ------------------------------------------------------------------ settings

def setting(client, key, value):
    return client.post("/settings", {"data": {"type": "settings", "attributes": {"key": key, "value": value}}})


@pytest.mark.parametrize("value", [{"a": [1, 2]}, [1, "x"], "text", 42, True, None])
def test_settings_hold_any_json_value(admin, value):
    created = assert_jsonapi(setting(admin, "mail.footer", value), 201)["data"]
    assert created["attributes"] == {**created["attributes"], "key": "mail.footer", "value": value}
    listed = assert_jsonapi(admin.get("/settings", {"filter[key]": "mail.footer"}), 200)
    assert [s["id"] for s in listed["data"]] == [created["id"]]


def test_setting_keys_are_unique_and_well_formed(admin):
    assert_jsonapi(setting(admin, "signup.open", True), 201)
    assert error_of(setting(admin, "signup.open", False), 409)["code"] == "not_unique"
    assert error_of(setting(admin, "Bad Key!", 1), 422)["source"]["pointer"] == "/data/attributes/key"


def test_only_admins_may_even_read_settings(app, admin, factory):
    created = assert_jsonapi(setting(admin, "signup.open", True), 201)["data"]
    org = factory.organization()
    for role in ({"name": "org_admin", "scopes": {"organization": [org.id]}}, None):
        account = factory.account(roles=[role] if role else [])
        other = ApiClient(app.test_client(), factory.token(account))
        assert error_of(other.get("/settings"), 403)["code"] == "forbidden"
        assert error_of(other.get(f"/settings/{created['id']}"), 403)
        assert error_of(setting(other, "x", 1), 403)


# ------------------------------------------------------------------ quotas

def increment(client, org_id, usage):
    return client.post(f"/organizations/{org_id}/increment", {"usage": usage})


def usage_of(client, org_id):
    return assert_jsonapi(client.get(f"/organizations/{org_id}"), 200)["data"]["attributes"]


def test_increment_adds_up_to_the_limit_and_refuses_past_it(admin, factory):
    org = factory.organization(quota_limit=10)
    body = assert_jsonapi(increment(admin, org.id, 3), 200)
    assert body["data"]["attributes"]["quota_usage"] == 3 and body["data"]["attributes"]["quota_remaining"] == 7
    error = error_of(increment(admin, org.id, 8), 429)
    assert error["code"] == "quota_exceeded"
    assert usage_of(admin, org.id)["quota_usage"] == 3  # nothing was added
    assert assert_jsonapi(increment(admin, org.id, 7), 200)["data"]["attributes"]["quota_remaining"] == 0
    assert error_of(increment(admin, org.id, 1), 429)


def test_increment_without_a_limit_always_adds(admin, factory):
    org = factory.organization()
    assert assert_jsonapi(increment(admin, org.id, 1000), 200)["data"]["attributes"]["quota_usage"] == 1000


@pytest.mark.parametrize("usage", [0, -1, "3", 1.5, None, 2 ** 31])
def test_increment_takes_a_positive_integer(admin, factory, usage):
    org = factory.organization()
    assert error_of(increment(admin, org.id, usage), 422)["source"]["pointer"] == "/usage"


def test_increment_accepts_a_jsonapi_body(admin, factory):
    org = factory.organization()
    body = {"data": {"type": "organizations", "attributes": {"usage": 2}}}
    assert assert_jsonapi(admin.post(f"/organizations/{org.id}/increment", body), 200)["data"]["attributes"][
        "quota_usage"] == 2


def test_who_may_increment(app, admin, factory):
    mine, other = factory.organization(quota_limit=5), factory.organization(quota_limit=5)
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=mine.id, roles=[{"name": "org_admin", "scopes": {"organization": [mine.id]}}])))
    auditor = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=mine.id, roles=[{"name": "auditor", "scopes": {"organization": [mine.id]}}])))
    assert_jsonapi(increment(org_admin, mine.id, 1), 200)
    assert error_of(increment(org_admin, other.id, 1), 404)["code"] == "not_found"
    assert error_of(increment(auditor, mine.id, 1), 403)["code"] == "forbidden"
    assert usage_of(admin, mine.id)["quota_usage"] == 1 and usage_of(admin, other.id)["quota_usage"] == 0


def _parallel(app, token, org_id, count):
    barrier, statuses = threading.Barrier(count), []

    def attempt():
        client = ApiClient(app.test_client(), token)
        barrier.wait()
        statuses.append(increment(client, org_id, 1).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_fifty_concurrent_increments_add_exactly_fifty(app, admin, factory):
    org = factory.organization()
    statuses = _parallel(app, admin.token, org.id, 50)
    assert statuses == [200] * 50
    assert usage_of(admin, org.id)["quota_usage"] == 50


def test_concurrent_increments_never_overshoot_the_limit(app, admin, factory):
    org = factory.organization(quota_limit=30)
    statuses = _parallel(app, admin.token, org.id, 50)
    assert statuses.count(200) == 30 and statuses.count(429) == 20
    assert usage_of(admin, org.id)["quota_usage"] == 30


# ------------------------------------------------------------------ unit policies

def test_the_policy_catalogue_is_listed(user):
    body = assert_jsonapi(user.get("/organizational_units/policies"), 200)
    catalogue = {item["id"]: item["attributes"] for item in body["data"]}
    assert catalogue["mfa_required"]["value_type"] == "boolean"
    assert catalogue["allowed_email_domains"]["value_type"] == "array"
    assert body["meta"]["count"] == len(catalogue)
    assert error_of(user.get("/organizational_units/policies", {"x": "1"}), 400)["source"]["parameter"] == "x"


def unit(client, org, policies):
    return client.post("/organizational_units", {"data": {"type": "organizational_units", "attributes": {
        "organization_id": org.id, "name": "sales", "policies": policies}}})


def test_unit_policies_must_come_from_the_catalogue(admin, factory):
    org = factory.organization()
    policies = {"mfa_required": True, "allowed_email_domains": ["example.com"], "session_idle_timeout": 600}
    assert assert_jsonapi(unit(admin, org, policies), 201)["data"]["attributes"]["policies"] == policies
    for bad in ({"mfa": True}, {"mfa_required": "yes"}, {"session_idle_timeout": -1},
                {"allowed_email_domains": "example.com"}):
        error = error_of(unit(admin, org, bad), 422)
        assert error["source"]["pointer"] == "/data/attributes/policies", bad


def test_each_policy_has_a_self_link_that_shows_it(user):
    listed = assert_jsonapi(user.get("/organizational_units/policies"), 200)["data"]
    assert listed and all(item["links"]["self"].endswith(f"/api/v3/iam/organizational_units/policies/{item['id']}")
                          and item["links"]["self"].startswith("http") for item in listed)
    for item in listed:
        shown = assert_jsonapi(user.get(item["links"]["self"].split("/api/v3/iam", 1)[1]), 200)
        assert shown["data"] == item
        assert shown["links"]["self"] == item["links"]["self"]
    shown = assert_jsonapi(user.get("/organizational_units/policies/mfa_required"), 200)["data"]
    assert shown["type"] == "policies" and shown["attributes"]["key"] == "mfa_required"
    assert shown["attributes"]["value_type"] == "boolean"


@pytest.mark.parametrize("key", ["no_such_policy", "MFA_REQUIRED", "1"])
def test_an_unknown_policy_key_is_a_404(user, key):
    assert error_of(user.get(f"/organizational_units/policies/{key}"), 404)["code"] == "not_found"


def test_a_policy_takes_no_query_parameters_and_needs_a_login(client, user):
    error = error_of(user.get("/organizational_units/policies/mfa_required", {"x": "1"}), 400)
    assert error["source"]["parameter"] == "x"
    assert error_of(client.get("/organizational_units/policies/mfa_required"), 401)
