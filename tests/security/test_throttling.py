"""Throttling: the per-account lock and per-client rate limits (shared through Redis)."""
import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from iam import create_app
from iam.extensions import db
from iam.models import Account, AuditEvent, utcnow
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of

WRONG = "not the password at all"


def login(app, email, password, address="127.0.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return ApiClient(client).post("/auth/login", {"email": email, "password": password})


def audit_count(app, action):
    with app.app_context():
        return len(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all())


@pytest.fixture
def generous_client_limit(app):
    """Keep the per-client limit out of the way of per-account tests."""
    app.config["IAM_LOGIN_RATE_LIMIT"] = "1000 per minute"
    yield
    app.config["IAM_LOGIN_RATE_LIMIT"] = "20 per 10 minutes"


@pytest.fixture
def client_limit(app):
    """Set a per-client limit for one test; the defaults come back afterwards."""
    defaults = {k: app.config[k] for k in ("IAM_LOGIN_RATE_LIMIT", "IAM_RESET_RATE_LIMIT")}
    yield app.config.__setitem__
    app.config.update(defaults)


def test_five_failures_lock_the_account_with_the_same_401(app, factory, generous_client_limit):
    factory.account(email="ada@example.com")
    failures = [login(app, "ada@example.com", WRONG) for _ in range(5)]
    locked = login(app, "ada@example.com", PASSWORD)  # the right password, but locked
    bodies = {r.get_data() for r in failures + [locked]}
    assert len(bodies) == 1 and locked.status_code == 401
    assert audit_count(app, "lock") == 1


def test_the_lock_ends_and_a_success_resets_the_count(app, factory, generous_client_limit):
    account = factory.account(email="ada@example.com")
    for _ in range(5):
        login(app, "ada@example.com", WRONG)
    with app.app_context():
        db.session.get(Account, account.id).locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_jsonapi(login(app, "ada@example.com", PASSWORD), 200)
    for _ in range(4):
        login(app, "ada@example.com", WRONG)
    assert_jsonapi(login(app, "ada@example.com", PASSWORD), 200)  # 4 failures after a success: not locked


def test_twenty_parallel_wrong_passwords_check_at_most_five(app, factory, generous_client_limit):
    account = factory.account(email="ada@example.com")
    barrier, responses = threading.Barrier(20), []

    def attempt():
        barrier.wait()
        responses.append(login(app, "ada@example.com", WRONG))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in responses] == [401] * 20
    assert len({r.get_data() for r in responses}) == 1
    # Each checked password writes one login_failed event; locked attempts check nothing.
    assert audit_count(app, "login_failed") == 5
    with app.app_context():
        row = db.session.get(Account, account.id)
        assert row.failed_login_count == 5 and row.locked_until is not None


def test_failed_logins_from_one_address_get_429_with_retry_after(app, factory, client_limit):
    factory.account(email="ada@example.com")
    client_limit("IAM_LOGIN_RATE_LIMIT", "3 per minute")
    for _ in range(5):  # successes are never counted against a client
        assert_jsonapi(login(app, "ada@example.com", PASSWORD), 200)
    for n in range(3):
        error_of(login(app, f"nobody{n}@example.com", WRONG), 401)
    response = login(app, "ada@example.com", PASSWORD)
    error = error_of(response, 429)
    assert error["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    assert_jsonapi(login(app, "ada@example.com", PASSWORD, address="10.1.2.3"), 200)  # another client


def test_reset_requests_are_limited_per_client(app, client_limit):
    client_limit("IAM_RESET_RATE_LIMIT", "2 per minute")
    client = ApiClient(app.test_client())
    for _ in range(2):
        assert client.post("/account/passwords/request_reset", {"email": "x@example.com"}).status_code == 204
    response = client.post("/account/passwords/request_reset", {"email": "x@example.com"})
    assert error_of(response, 429)["code"] == "rate_limited" and response.headers["Retry-After"]


def test_processes_sharing_redis_share_their_counters(app, database_url, factory):
    """Two app instances (as two server processes would be) on one Redis count together."""
    factory.account(email="ada@example.com")
    settings = {"TESTING": True, "IAM_DATABASE_URL": database_url,
                "IAM_RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/15",
                "IAM_LOGIN_RATE_LIMIT": "4 per minute", "IAM_LOGIN_MAX_FAILURES": 100}
    first, second = create_app(settings), create_app(settings)
    first.extensions["iam_limiter"].reset()
    try:
        for n in range(2):
            error_of(login(first, f"nobody{n}@example.com", WRONG), 401)
            error_of(login(second, f"nobody{n}@example.com", WRONG), 401)
        assert error_of(login(first, "ada@example.com", PASSWORD), 429)["code"] == "rate_limited"
        assert error_of(login(second, "ada@example.com", PASSWORD), 429)["code"] == "rate_limited"
    finally:
        first.extensions["iam_limiter"].reset()
        for instance in (first, second):
            with instance.app_context():
                db.engine.dispose()


def test_guessing_the_current_password_through_accounts_me_is_limited(app, factory, client_limit):
    client_limit("IAM_LOGIN_RATE_LIMIT", "3 per minute")
    me = ApiClient(app.test_client(), factory.token(factory.account(email="ada@example.com")))
    for _ in range(5):  # reading one's account never counts
        assert_jsonapi(me.get("/accounts/me"), 200)
    guess = {"data": {"type": "accounts", "attributes": {"email": "new@example.com", "current_password": WRONG}}}
    for _ in range(3):
        error_of(me.patch("/accounts/me", guess), 422)
    assert error_of(me.patch("/accounts/me", guess), 429)["code"] == "rate_limited"
    # The limit is on changing the account: reading it still works.
    assert assert_jsonapi(me.get("/accounts/me"), 200)["data"]["attributes"]["email"] == "ada@example.com"


def rate_limit_headers(response):
    return {name: value for name, value in response.headers.items()
            if name.lower().startswith("x-ratelimit") or name.lower() == "retry-after"}


def test_only_the_429_of_a_limited_endpoint_carries_rate_limit_headers(app, factory, client_limit):
    """No X-RateLimit-* anywhere; Retry-After on the 429 only, in whole seconds."""
    factory.account(email="ada@example.com")
    client_limit("IAM_LOGIN_RATE_LIMIT", "3 per minute")
    client_limit("IAM_RESET_RATE_LIMIT", "2 per minute")
    answers = [login(app, "ada@example.com", PASSWORD)] + [login(app, "ada@example.com", WRONG) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 401, 401, 401]
    limited = login(app, "ada@example.com", PASSWORD)
    reset = ApiClient(app.test_client())
    answers += [reset.post("/account/passwords/request_reset", {"email": "x@example.com"}) for _ in range(2)]
    assert [r.status_code for r in answers[-2:]] == [204, 204]
    for answer in answers:
        assert rate_limit_headers(answer) == {}, (answer.status_code, rate_limit_headers(answer))
    held = reset.post("/account/passwords/request_reset", {"email": "x@example.com"})
    for response in (limited, held):
        assert error_of(response, 429)["code"] == "rate_limited"
        assert list(rate_limit_headers(response)) == ["Retry-After"]
        retry_after = response.headers["Retry-After"]
        assert re.fullmatch(r"[1-9][0-9]*", retry_after) and int(retry_after) <= 60


def test_retry_after_is_when_the_limit_lets_the_client_in_again(app, factory, client_limit):
    factory.account(email="ada@example.com")
    client_limit("IAM_LOGIN_RATE_LIMIT", "2 per 2 seconds")
    for _ in range(2):
        error_of(login(app, "ada@example.com", WRONG), 401)
    limited = login(app, "ada@example.com", PASSWORD)
    error_of(limited, 429)
    wait = int(limited.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait)
    assert_jsonapi(login(app, "ada@example.com", PASSWORD), 200)
