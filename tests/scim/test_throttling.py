"""Refused SCIM authentications are rate-limited per client address, as failed logins are: past the
limit (IAM_SCIM_AUTH_RATE_LIMIT, by default IAM_LOGIN_RATE_LIMIT's value) /scim/v2 answers that
address a 429 SCIM error with Retry-After, before any key is looked up, a good key too. Accepted
keys are never counted, and other addresses are not affected."""
import time

import pytest

from tests.helpers import API, JSONAPI, ApiClient, error_of
from tests.scim.conftest import ScimClient, scim_error

WRONG_KEY = "iam_not-a-key-of-this-server"


def from_address(app, key, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return ScimClient(client, key)


def refuse(scim_client, times):
    for _ in range(times):
        scim_error(scim_client.get("/Users"), 401)


def assert_too_many(response):
    found = scim_error(response, 429)
    assert "scimType" not in found and "Too many refused authentications" in found["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60  # the limit's window is a minute
    assert "WWW-Authenticate" not in response.headers
    assert not [name for name in response.headers.keys() if name.lower().startswith("x-ratelimit")]
    return found


def spy(calls, name, method):
    def call(*args, **kwargs):
        calls.append(name)
        return method(*args, **kwargs)
    return call


@pytest.fixture
def scim_limit(app):
    """IAM_SCIM_AUTH_RATE_LIMIT for one test."""
    default = app.config["IAM_SCIM_AUTH_RATE_LIMIT"]
    yield lambda value: app.config.__setitem__("IAM_SCIM_AUTH_RATE_LIMIT", value)
    app.config["IAM_SCIM_AUTH_RATE_LIMIT"] = default


def test_refused_authentications_from_one_address_answer_429_even_for_a_good_key(app, scim, admin,
                                                                                  three_failures_a_minute):
    good = from_address(app, scim.key, "10.20.0.1")
    for _ in range(5):  # accepted keys are never counted: more of them than the limit
        assert good.get("/Users").status_code == 200
    # Three refusals of three kinds: no header, an unknown key, a credential that is no SCIM key.
    scim_error(good.client.get("/scim/v2/Users"), 401)
    scim_error(from_address(app, WRONG_KEY, "10.20.0.1").get("/Users"), 401)
    scim_error(from_address(app, admin.token, "10.20.0.1").get("/Users"), 401)
    for path in ("/Users", "/Groups", "/ServiceProviderConfig", "/Schemas"):
        assert_too_many(good.get(path))  # the good key too, on every endpoint
    assert_too_many(from_address(app, WRONG_KEY, "10.20.0.1").get("/Users"))
    assert_too_many(good.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                         "userName": "ada@acme.example"}))
    # Another address is not affected: its good key works, its wrong key gets the 401.
    assert from_address(app, scim.key, "10.20.0.2").get("/Users").status_code == 200
    scim_error(from_address(app, WRONG_KEY, "10.20.0.2").get("/Users"), 401)


def test_the_429_is_answered_before_any_key_is_looked_up(app, scim, three_failures_a_minute, count_queries):
    prober = from_address(app, WRONG_KEY, "10.20.1.1")
    refuse(prober, 3)
    with count_queries() as statements:
        assert_too_many(from_address(app, scim.key, "10.20.1.1").get("/Users"))
    assert statements == []


def test_accepted_keys_write_nothing_to_the_rate_limit_storage(app, scim, monkeypatch):
    """One read of the count per SCIM request, and no write unless the key is refused."""
    strategy = app.extensions["iam_limiter"].limiter  # the outage-proof strategy every count goes through
    calls = []
    for name in ("hit", "test", "get_window_stats"):
        monkeypatch.setattr(strategy, name, spy(calls, name, getattr(strategy, name)))
    for path in ("/Users", "/Groups", "/ServiceProviderConfig"):
        assert scim.get(path).status_code == 200
    assert calls == ["test"] * 3
    calls.clear()
    refuse(from_address(app, WRONG_KEY, "10.20.2.1"), 1)
    assert calls == ["test", "hit"]


def test_only_refusals_count_not_the_other_errors_of_accepted_keys(app, scim, three_failures_a_minute):
    for _ in range(5):
        scim_error(scim.get("/Users/999999"), 404)
        scim_error(scim.get("/Users", {"filter": "nonsense eq"}), 400, "invalidFilter")
        scim_error(scim.get("/Me"), 501)
    assert scim.get("/Users").status_code == 200


def test_the_scim_count_is_not_the_login_count(app, scim, three_failures_a_minute):
    """Same limit value, separate counts: failed logins do not hold SCIM back, nor the reverse."""
    api = ApiClient(app.test_client())
    api.client.environ_base["REMOTE_ADDR"] = "10.20.3.1"
    for _ in range(3):
        error_of(api.post("/auth/login", {"email": "nobody@example.com", "password": "not the password"}), 401)
    assert error_of(api.post("/auth/login", {"email": "nobody@example.com", "password": "x" * 12}), 429)
    assert from_address(app, scim.key, "10.20.3.1").get("/Users").status_code == 200
    refuse(from_address(app, WRONG_KEY, "10.20.3.2"), 3)
    assert_too_many(from_address(app, scim.key, "10.20.3.2").get("/Users"))
    login = app.test_client().post(f"{API}/auth/login", json={"email": "nobody@example.com", "password": "x" * 12},
                                   headers={"Accept": JSONAPI}, environ_base={"REMOTE_ADDR": "10.20.3.2"})
    assert error_of(login, 401)["code"] == "invalid_credentials"


def test_iam_scim_auth_rate_limit_sets_its_own_limit(app, scim, scim_limit):
    scim_limit("2 per minute")  # IAM_LOGIN_RATE_LIMIT stays at its default of 20
    refuse(from_address(app, WRONG_KEY, "10.20.4.1"), 2)
    assert_too_many(from_address(app, scim.key, "10.20.4.1").get("/Users"))
    scim_limit("2 per minute; 3 per hour")  # several limits: the strictest one applies
    refuse(from_address(app, WRONG_KEY, "10.20.4.2"), 2)
    assert_too_many(from_address(app, scim.key, "10.20.4.2").get("/Users"))


def test_retry_after_is_when_the_address_may_try_again(app, scim, scim_limit):
    scim_limit("2 per 2 seconds")
    refuse(from_address(app, WRONG_KEY, "10.20.5.1"), 2)
    limited = from_address(app, scim.key, "10.20.5.1").get("/Users")
    scim_error(limited, 429)
    wait = int(limited.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait)
    assert from_address(app, scim.key, "10.20.5.1").get("/Users").status_code == 200
