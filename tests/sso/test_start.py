"""GET /auth/sso/start: the browser goes to the provider with the code flow, PKCE S256, a state
and a nonce; what comes back is trusted only as far as what this server stored."""
import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from iam import secret_store
from iam.extensions import db
from iam.models import SsoAttempt
from iam.resources.common import digest
from tests.helpers import error_of

START = "/api/v3/iam/auth/sso/start"


def start(app, **params):
    return app.test_client().get(START, query_string=params)


def test_start_redirects_to_the_providers_authorization_endpoint(app, make_provider, oidc_provider):
    provider_id = make_provider()
    app.config["IAM_SSO_RETURN_URLS"] = ["https://app.example.com/done"]
    try:
        response = start(app, identity_provider_id=provider_id, login_hint="ada@acme.example",
                         return_to="https://app.example.com/done")
    finally:
        app.config["IAM_SSO_RETURN_URLS"] = []
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == oidc_provider[0] + "/oauth2/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == "iam-test-client"
    assert query["redirect_uri"] == "http://127.0.0.1:5000/api/v3/iam/auth/sso/callback"
    assert query["scope"] == "openid email profile" and query["login_hint"] == "ada@acme.example"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    # What is stored: the state's digest only, the nonce, the verifier sealed, the browser's digest.
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("iam_sso_browser=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/api/v3/iam/auth/sso" in cookie and "Max-Age=600" in cookie
    browser = cookie.split(";")[0].split("=", 1)[1]
    with app.app_context():
        attempt = db.session.scalars(select(SsoAttempt)).one()
    assert attempt.state_digest == digest(query["state"]) and query["state"] not in repr(vars(attempt))
    assert attempt.browser_digest == digest(browser) and attempt.nonce == query["nonce"]
    assert attempt.return_to == "https://app.example.com/done" and attempt.used_at is None
    verifier = secret_store.unseal(attempt.code_verifier_sealed, "sso_attempts.code_verifier", app.config)
    assert verifier not in attempt.code_verifier_sealed and 43 <= len(verifier) <= 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    assert query["code_challenge"] == challenge
    # The provider itself takes the request: its sign-in form, not an error.
    shown = requests.get(response.headers["Location"], timeout=10)
    assert shown.status_code == 200 and "form" in shown.text.lower()


def test_a_second_start_in_the_same_browser_keeps_its_value(app, make_provider):
    provider_id = make_provider()
    client = app.test_client()
    first = client.get(START, query_string={"identity_provider_id": provider_id})
    second = client.get(START, query_string={"identity_provider_id": provider_id})
    assert first.status_code == second.status_code == 302
    value = first.headers["Set-Cookie"].split(";")[0]
    assert second.headers["Set-Cookie"].split(";")[0] == value  # both attempts can complete in this browser
    states = [parse_qs(urlsplit(r.headers["Location"]).query)["state"][0] for r in (first, second)]
    assert states[0] != states[1]


def test_unknown_and_disabled_providers_look_the_same(app, make_provider):
    disabled = make_provider(enabled=False, email_domains=["off.example"])
    unknown = error_of(start(app, identity_provider_id=987654), 401)
    assert error_of(start(app, identity_provider_id=disabled), 401) == unknown
    assert error_of(start(app, identity_provider_id=0), 401) == unknown  # no row can have these
    assert error_of(start(app, identity_provider_id=99999999999), 401) == unknown
    assert unknown["code"] == "sso_failed"


@pytest.mark.parametrize("params, parameter", [
    ({}, "identity_provider_id"),
    ({"identity_provider_id": "x"}, "identity_provider_id"),
    ({"identity_provider_id": "-1"}, "identity_provider_id"),
    ({"identity_provider_id": "²"}, "identity_provider_id"),
    ({"identity_provider_id": "1", "return_to": "https://evil.example/"}, "return_to"),
    ({"identity_provider_id": "1", "login_hint": "a" * 321}, "login_hint"),
])
def test_malformed_starts_are_400s(app, make_provider, params, parameter):
    make_provider()
    error = error_of(start(app, **params), 400)
    assert error["source"]["parameter"] == parameter
    with app.app_context():
        assert db.session.scalars(select(SsoAttempt)).all() == []


def test_a_provider_that_cannot_be_reached_is_a_503_and_stores_nothing(app, make_provider, oidc_provider):
    unreachable = make_provider(issuer="http://127.0.0.1:9", email_domains=["down.example"])
    answer = start(app, identity_provider_id=unreachable)
    assert error_of(answer, 503)["code"] == "identity_provider_unavailable" and answer.headers["Retry-After"]
    # A discovery document that speaks for another issuer (here one without the trailing slash:
    # the match is exact) is not this provider's.
    impostor = make_provider(issuer=oidc_provider[0] + "/", email_domains=["i.example"])
    assert error_of(start(app, identity_provider_id=impostor), 503)["code"] == "identity_provider_unavailable"
    with app.app_context():
        assert db.session.scalars(select(SsoAttempt)).all() == []
