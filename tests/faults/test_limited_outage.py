"""A rate-limited endpoint whose database cannot serve answers the 503 every endpoint answers, with
its own `Retry-After: 1`: the rate limiter adds no header to it (only a 429 carries the limiter's
Retry-After), and a 503 is no failure it counts. On PostgreSQL the outage is a cut TCP proxy, on
SQLite a write lock held past IAM_DB_LOCK_TIMEOUT."""
import sqlite3

from sqlalchemy.engine import make_url

from tests.faults.helpers import assert_unavailable
from tests.faults.test_timeouts import LOCK, _timed
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of
from tests.web.test_pages import browser, page, password_page

WRONG = "not the password at all"


def limiter_headers(response):
    return {name: value for name, value in response.headers.items() if name.lower().startswith("x-ratelimit")}


def assert_unavailable_page(response):
    shown = page(response, 503)
    assert "Try again in a moment" in shown.text
    assert response.headers.get("Retry-After") == "1", dict(response.headers)


def login(app, password=WRONG):
    return ApiClient(app.test_client()).post("/auth/login", {"email": "ada@example.com", "password": password})


def sign_in(client, form, password=WRONG):
    return client.post("/signin/password", data={"csrf_token": form.csrf, "email": form.value("email"),
                                                 "password": password, "next": form.value("next")})


def test_a_limited_endpoint_answers_503_with_retry_after_1_during_a_postgresql_outage(pg_proxy, make_app, factory):
    factory.account(email="ada@example.com")
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2, IAM_LOGIN_RATE_LIMIT="2 per minute",
                       IAM_LOGIN_MAX_FAILURES=100)
    error_of(login(proxied), 401)  # one failure counted: the limit's window has begun
    client = browser(proxied)
    form = password_page(client, "ada@example.com")
    pg_proxy.cut()
    try:
        for _ in range(3):  # more than the limit: a 503 is not counted
            response = login(proxied)
            assert_unavailable(response)
            assert limiter_headers(response) == {}
        unavailable = sign_in(client, form)
        assert_unavailable_page(unavailable)
        assert limiter_headers(unavailable) == {}
    finally:
        pg_proxy.restore()
    assert_jsonapi(login(proxied, PASSWORD), 200)  # the 503s did not count against the address
    error_of(login(proxied), 401)
    limited = login(proxied)
    assert error_of(limited, 429)["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 1


def test_a_limited_endpoint_answers_503_with_retry_after_1_while_sqlite_is_locked(sqlite_only, make_app, factory,
                                                                                 database_url):
    factory.account(email="ada@example.com")
    app = make_app(IAM_DB_LOCK_TIMEOUT=LOCK, IAM_LOGIN_RATE_LIMIT="2 per minute", IAM_LOGIN_MAX_FAILURES=100)
    error_of(login(app), 401)
    client = browser(app)
    form = password_page(client, "ada@example.com")
    holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a failed login writes its attempt: it waits, then gives up
        response, _ = _timed(lambda: login(app), lambda: None)
        assert_unavailable(response)
        assert limiter_headers(response) == {}
        unavailable, _ = _timed(lambda: sign_in(client, form), lambda: None)
        assert_unavailable_page(unavailable)
        assert limiter_headers(unavailable) == {}
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_jsonapi(login(app, PASSWORD), 200)
    error_of(login(app), 401)
    error_of(login(app), 429)
