"""Security headers on every answer (issue 10, finding 4), safe X-Request-IDs, /metrics for loopback only.

Every answer carries nosniff, DENY framing, no-referrer and a Content-Security-Policy; API
answers (the credential ones first) are `Cache-Control: no-store`; the docs page has a CSP
that lets Swagger UI run from this server's files only.
"""
import json
import logging
import re

import pytest

from iam import create_app
from tests.helpers import API, PASSWORD, ApiClient, assert_jsonapi, error_of

API_POLICY = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def assert_secure(response, policy=API_POLICY, cache="no-store"):
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)
    assert headers.get("X-Frame-Options") == "DENY", dict(headers)
    assert headers.get("Referrer-Policy") == "no-referrer", dict(headers)
    assert headers.get("Content-Security-Policy") == policy, dict(headers)
    assert headers.get("Cache-Control") == cache, dict(headers)


def login(app, email="admin@example.com"):
    return ApiClient(app.test_client()).post("/auth/login", {"email": email, "password": PASSWORD})


# ------------------------------------------------------------------ the headers

def test_a_login_and_a_refresh_are_not_stored(app, admin_account):
    response = login(app)
    body = assert_jsonapi(response, 200)
    assert body["meta"]["token"] and body["meta"]["refresh_token"]
    assert_secure(response)
    refreshed = ApiClient(app.test_client()).post("/auth/refresh", {"refresh_token": body["meta"]["refresh_token"]})
    assert assert_jsonapi(refreshed, 200)["meta"]["refresh_token"]
    assert_secure(refreshed)


def test_a_new_api_key_and_the_own_account_are_not_stored(user):
    created = user.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "nightly sync"}}})
    assert assert_jsonapi(created, 201)["meta"]["key"]
    assert_secure(created)
    me = user.get("/accounts/me")
    assert assert_jsonapi(me, 200)["data"]["id"] == str(user.account.id)
    assert_secure(me)


@pytest.mark.parametrize("path", [f"{API}/no_such_thing", "/no_such_thing"])
def test_an_unknown_url_has_the_headers(client, path):
    response = client.client.get(path, headers={"Accept": "application/vnd.api+json"})
    error_of(response, 404)
    assert_secure(response)


def test_a_401_a_405_and_a_413_have_the_headers(app, client):
    unauthenticated = client.get("/accounts")
    assert error_of(unauthenticated, 401)
    assert_secure(unauthenticated)
    wrong_method = client.get("/auth/login")
    assert error_of(wrong_method, 405)
    assert_secure(wrong_method)
    too_large = client.post("/auth/login", raw="x" * (app.config["MAX_CONTENT_LENGTH"] + 1))
    assert error_of(too_large, 413)
    assert_secure(too_large)


def test_a_500_has_the_headers(tmp_path):
    app = create_app({"TESTING": True, "IAM_ENV": "test", "IAM_DATABASE_URL": f"sqlite:///{tmp_path}/iam.db",
                      "PROPAGATE_UNEXPECTED_ERRORS": False})

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")
    error_of(response, 500)
    assert_secure(response)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", f"{API}/openapi.json"])
def test_operations_answers_have_the_headers(client, path):
    response = client.client.get(path)
    assert response.status_code == 200
    assert_secure(response)


def test_the_docs_page_may_run_only_this_servers_scripts(client):
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert_secure(response, policy=DOCS_POLICY)
    html = response.get_data(as_text=True)
    # No inline script: each <script> is a file of this server or a data block (never run).
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts
    for attributes, text in scripts:
        assert 'src="' in attributes or 'type="application/json"' in attributes, attributes
        if 'src="' in attributes:
            assert not text.strip()
    sources = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert sources == [f"{API}/docs/static/swagger-ui-bundle.js", f"{API}/docs/init.js"]
    start = client.get("/docs/init.js")
    assert start.status_code == 200 and "javascript" in start.mimetype
    assert "SwaggerUIBundle(" in start.get_data(as_text=True)
    assert_secure(start)


def test_a_cache_control_a_view_chose_is_kept(client):
    """The docs page's static files set their own (revalidate with the ETag)."""
    response = client.get("/docs/static/swagger-ui.css")
    assert response.status_code == 200 and response.headers.get("ETag")
    assert_secure(response, cache="no-cache")


# ------------------------------------------------------------------ X-Request-ID

def access_lines(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "iam.access"]


@pytest.mark.parametrize("given", ["abc-123", "0f8e1c2a-5b7d-4e3f-9a1b-2c3d4e5f6a7b", "trace:1.2_x", "A" * 128])
def test_a_safe_request_id_is_echoed_and_logged(client, caplog, given):
    caplog.set_level(logging.INFO, logger="iam.access")
    response = client.client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] == given
    assert access_lines(caplog)[-1]["request_id"] == given


@pytest.mark.parametrize("given", ["has spaces", 'a "quoted" id', "it's", "<script>alert(1)</script>",
                                   "a" * 129, "b" * 200, "slash/es", "semi;colon", "new%0Aline", ""])
def test_an_unsafe_request_id_is_replaced_by_a_generated_one(client, caplog, given):
    caplog.set_level(logging.INFO, logger="iam.access")
    response = client.get("/accounts", headers={"X-Request-ID": given})
    assert response.status_code == 401
    generated = response.headers["X-Request-ID"]
    assert generated != given and re.fullmatch(r"[0-9a-f]{32}", generated), generated
    line = access_lines(caplog)[-1]
    assert line["request_id"] == generated
    if given:
        assert given not in caplog.text


# ------------------------------------------------------------------ /metrics

@pytest.fixture
def metrics_token(app):
    app.config["IAM_METRICS_TOKEN"] = "scrape-me-please"
    yield "scrape-me-please"
    app.config["IAM_METRICS_TOKEN"] = ""


def scrape(app, address="127.0.0.1", headers=None):
    return app.test_client().get("/metrics", headers=headers or {}, environ_base={"REMOTE_ADDR": address})


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1"])
def test_metrics_answer_loopback_clients_by_default(app, address):
    response = scrape(app, address)
    assert response.status_code == 200 and b"iam_requests_total" in response.data
    assert_secure(response)


@pytest.mark.parametrize("address", ["10.1.2.3", "203.0.113.9", "2001:db8::1", "", "unix-socket"])
def test_metrics_refuse_other_clients_by_default(app, address):
    response = scrape(app, address)
    assert response.status_code == 403 and response.mimetype == "text/plain"
    assert b"loopback" in response.data and b"iam_requests_total" not in response.data
    assert_secure(response)


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                                    {"X-Real-IP": "203.0.113.9"}, {"X-Forwarded-For": "127.0.0.1"}])
def test_metrics_refuse_a_loopback_request_that_came_through_a_proxy(app, header):
    response = scrape(app, "127.0.0.1", header)
    assert response.status_code == 403 and b"iam_requests_total" not in response.data


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer scrape-me-please2", "scrape-me-please",
                                           "Basic c2NyYXBlLW1lLXBsZWFzZQ==", "Bearer ünïcode"])
def test_with_a_token_set_metrics_need_it_even_from_loopback(app, metrics_token, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for address in ("127.0.0.1", "10.1.2.3"):
        response = scrape(app, address, headers)
        assert response.status_code == 401 and b"iam_requests_total" not in response.data
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_secure(response)


@pytest.mark.parametrize("address, headers", [("10.1.2.3", {}), ("127.0.0.1", {}), ("2001:db8::1", {}),
                                              ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"})])
def test_the_right_token_suffices_from_anywhere(app, metrics_token, address, headers):
    response = scrape(app, address, {**headers, "Authorization": f"Bearer {metrics_token}"})
    assert response.status_code == 200 and b"iam_requests_total" in response.data
