"""The callback refuses every ID token (and token answer) it must not trust, against a provider
that forges them (forger.py), driven through the real flow: start, the provider's
/authorize, the callback. A refusal is the one 401 `sso_failed` (503 when the provider is
unavailable), opens no session, creates no account, and is audited with its reason."""
import base64
import json
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from iam.extensions import db
from iam.models import (
    Account,
    AccountSession,
    SsoAttempt,
)
from iam.sso import id_token
from iam.sso import provider as providers
from tests.helpers import error_of, free_port
from tests.sso.forger import (CLIENT_SECRET, DROP, Recipe, assert_refused, assert_signed_in, b64url, count, failures,
                              s256, sign_in)


# The well-behaved provider

def test_a_well_formed_token_signs_in(app, forger, provider_id):
    meta = assert_signed_in(app, sign_in(app.test_client(), provider_id))
    # The forger checked the client secret (basic, the default) and the PKCE verifier.
    assert forger.token_requests == [{"auth": "client_secret_basic", "error": None}]
    (asked,) = forger.authorizations
    assert asked["redirect_uri"] == "http://127.0.0.1:5000/api/v3/iam/auth/sso/callback"
    with app.app_context():
        account = db.session.get(Account, int(meta["account_id"]))
        assert account.email == "ada@acme.example" and account.auth_type == "sso"
        assert db.session.scalars(select(SsoAttempt)).one().nonce == asked["nonce"]


def test_client_secret_post_when_the_provider_takes_only_that(app, forger, provider_id):
    forger.discovery["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    assert_signed_in(app, sign_in(app.test_client(), provider_id))
    assert forger.token_requests == [{"auth": "client_secret_post", "error": None}]


def test_a_wrong_client_secret_is_refused_by_the_provider(app, forger, make_provider):
    provider_id = make_provider(issuer=forger.issuer, jit_provisioning=True, client_secret="not-the-secret")
    assert_refused(app, sign_in(app.test_client(), provider_id), "invalid_client")
    assert forger.token_requests == [{"auth": "client_secret_basic", "error": "invalid_client"}]


# The forger itself refuses what a provider must (so its success above proves PKCE and client auth)

def _authorized(forger, verifier="v" * 43):
    answer = requests.get(forger.issuer + "/authorize", allow_redirects=False, timeout=10, params={
        "response_type": "code", "client_id": "iam-test-client", "redirect_uri": "http://rp.example/cb",
        "state": "s", "nonce": "n", "code_challenge": s256(verifier), "code_challenge_method": "S256"})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == "rp.example" and "state=s" in location.query
    return dict(part.split("=", 1) for part in location.query.split("&"))["code"]


@pytest.mark.parametrize("change, status, error", [
    pytest.param({}, 200, None, id="good"),
    pytest.param({"code_verifier": "w" * 43}, 400, "invalid_grant", id="wrong verifier"),
    pytest.param({"code_verifier": DROP}, 400, "invalid_grant", id="no verifier"),
    pytest.param({"redirect_uri": "http://rp.example/other"}, 400, "invalid_grant", id="wrong redirect_uri"),
    pytest.param({"client_id": "another-client"}, 400, "invalid_grant", id="another client's code"),
    pytest.param({"client_secret": "wrong"}, 401, "invalid_client", id="wrong secret"),
    pytest.param({"client_secret": DROP}, 401, "invalid_client", id="no client authentication"),
    pytest.param({"grant_type": "client_credentials"}, 400, "unsupported_grant_type", id="wrong grant_type"),
])
def test_the_forgers_token_endpoint(forger, change, status, error):
    code = _authorized(forger)
    good = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://rp.example/cb",
            "code_verifier": "v" * 43, "client_id": "iam-test-client", "client_secret": CLIENT_SECRET}
    form = {name: value for name, value in {**good, **change}.items() if value is not DROP}
    answer = requests.post(forger.issuer + "/token", data=form, timeout=10)
    assert answer.status_code == status and answer.json().get("error") == error
    if status == 200:
        assert set(answer.json()) == {"access_token", "token_type", "expires_in", "id_token"}
    # A code is good once, whatever its first use was.
    again = requests.post(forger.issuer + "/token", data=good, timeout=10)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_the_forger_requires_pkce_s256(forger):
    answer = requests.get(forger.issuer + "/authorize", allow_redirects=False, timeout=10, params={
        "response_type": "code", "client_id": "iam-test-client", "redirect_uri": "http://rp.example/cb",
        "state": "s", "code_challenge": "v" * 43, "code_challenge_method": "plain"})
    assert answer.status_code == 400 and forger.grants == {}


# Refusals of the token's claims

@pytest.mark.parametrize("claims, reason", [
    pytest.param({"aud": "another-client"}, "'aud'", id="wrong aud"),
    pytest.param({"iss": "http://localhost:1"}, "'iss'", id="wrong iss"),
    pytest.param({"exp": lambda now: now - 120}, "expired", id="expired beyond the leeway"),
    pytest.param({"exp": DROP}, "'exp'", id="no exp"),
    pytest.param({"iat": lambda now: now + 300}, "issued in the future", id="iat in the future"),
    pytest.param({"iat": DROP}, "'iat'", id="no iat"),
    pytest.param({"nonce": "n" * 43}, "nonce is not this sign-in's", id="wrong nonce"),
    pytest.param({"nonce": DROP}, "Missing claim: 'nonce'", id="no nonce"),
    pytest.param({"aud": ["iam-test-client", "another-client"]}, "azp", id="two audiences, no azp"),
    pytest.param({"aud": ["iam-test-client", "another-client"], "azp": "another-client"}, "azp",
                 id="two audiences, wrong azp"),
    pytest.param({"azp": "another-client"}, "azp", id="wrong azp"),
    pytest.param({"sub": DROP}, "'sub'", id="no sub"),
    pytest.param({"sub": "s" * 256}, "sub is not a string of at most 255", id="sub too long"),
    pytest.param({"email_verified": False}, "has not verified ada@acme.example", id="email not verified"),
    pytest.param({"email_verified": DROP}, "has not verified ada@acme.example", id="no email_verified"),
    pytest.param({"email": "ada@elsewhere.example"}, "outside the provider's email domains",
                 id="email outside the domains"),
    pytest.param({"email": DROP}, "carries no email", id="no email"),
])
def test_claims_refused(app, forger, provider_id, claims, reason):
    forger.recipe = Recipe(claims=claims)
    assert_refused(app, sign_in(app.test_client(), provider_id), reason)


# Refusals of the token's signature

def _flip_signature(token):
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([head, payload, signature[:middle] + flipped + signature[middle + 1:]])


def _swap_payload(token):
    """Another subject's claims under the original signature."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(sub="mallory", email="mallory@acme.example")
    return ".".join([head, b64url(json.dumps(claims).encode()), signature])


@pytest.mark.parametrize("recipe, reason", [
    (lambda forger: Recipe(key=forger.stranger), "signature does not verify"),
    (lambda forger: Recipe(key=forger.stranger, header={"kid": DROP}), "signature does not verify"),
    (lambda forger: Recipe(key=forger.stranger, header={"kid": "unknown"}), "does not publish (kid 'unknown'"),
    (lambda forger: Recipe(alg="none"), "algorithm 'none'"),
    (lambda forger: Recipe(alg="HS256"), "algorithm 'HS256'"),
    (lambda forger: Recipe(alg="HS256", header={"kid": "forger-1"}), "algorithm 'HS256'"),
    (lambda forger: Recipe(tamper=_flip_signature), "signature does not verify"),
    (lambda forger: Recipe(tamper=_swap_payload), "signature does not verify"),
    (lambda forger: Recipe(tamper=lambda token: token + ".x"), "not a compact JWS"),
], ids=["unpublished key", "unpublished key, no kid", "unpublished key, unknown kid", "alg none",
        "HS256 with the client secret", "HS256 naming the published kid", "tampered signature",
        "tampered payload", "five parts"])
def test_signatures_refused(app, forger, provider_id, recipe, reason):
    forger.recipe = recipe(forger)
    assert_refused(app, sign_in(app.test_client(), provider_id), reason)


def test_an_algorithm_the_provider_does_not_advertise(app, forger, provider_id):
    # PS256 with the published RSA key would verify: only the discovery document rules it out.
    forger.discovery["id_token_signing_alg_values_supported"] = ["RS256"]
    forger.recipe = Recipe(alg="PS256")
    assert_refused(app, sign_in(app.test_client(), provider_id), "algorithm 'PS256', not one of RS256")


@pytest.mark.parametrize("recipe", [
    pytest.param(lambda forger: Recipe(alg="PS256"), id="PS256, advertised by default"),
    pytest.param(lambda forger: Recipe(header={"kid": DROP}), id="no kid"),
    pytest.param(lambda forger: Recipe(claims={"exp": lambda now: now - 30, "iat": lambda now: now + 30}),
                 id="clock skew within the leeway"),
    pytest.param(lambda forger: Recipe(claims={"aud": ["iam-test-client", "another-client"],
                                               "azp": "iam-test-client"}), id="two audiences, azp the client"),
    pytest.param(lambda forger: Recipe(claims={"email_verified": "true"}), id="email_verified the string true"),
])
def test_tolerated_tokens_sign_in(app, forger, provider_id, recipe):
    """What the checks must not refuse (so that the refusals above are the checks' doing)."""
    forger.recipe = recipe(forger)
    assert_signed_in(app, sign_in(app.test_client(), provider_id))


# Refusals of the token answer

@pytest.mark.parametrize("answer, reason", [
    ((400, {"error": "invalid_grant"}, "application/json"), "refused the code (invalid_grant)"),
    ((200, "<html>signed in!</html>", "text/html"), "did not answer a token"),
    ((200, {"access_token": "a", "token_type": "Bearer"}, "application/json"), "no usable id_token"),
], ids=["invalid_grant", "not JSON", "no id_token"])
def test_token_answers_refused(app, forger, provider_id, answer, reason):
    forger.recipe = Recipe(answer=answer)
    assert_refused(app, sign_in(app.test_client(), provider_id), reason)


def test_a_token_endpoint_failing_is_unavailable(app, forger, provider_id):
    """A 5xx is the provider's trouble, not the sign-in's: 503, try again later."""
    forger.recipe = Recipe(answer=(500, "oops", "text/plain"))
    assert_refused(app, sign_in(app.test_client(), provider_id), "answered 500", status=503,
                   code="identity_provider_unavailable")


def test_a_token_answer_over_a_megabyte_is_unavailable(app, forger, provider_id):
    forger.recipe = Recipe(padding=providers.MAX_DOCUMENT)  # a good token, in a body too large
    event = assert_refused(app, sign_in(app.test_client(), provider_id), f"more than {providers.MAX_DOCUMENT} bytes",
                           status=503, code="identity_provider_unavailable")
    assert "unavailable" in event.changes["reason"]


def test_an_unreachable_token_endpoint_is_unavailable(app, forger, provider_id):
    forger.discovery["token_endpoint"] = f"http://127.0.0.1:{free_port()}/token"
    assert_refused(app, sign_in(app.test_client(), provider_id), "token endpoint could not be reached",
                   status=503, code="identity_provider_unavailable")


# Key rotation

def _rotated_after_one_sign_in(app, forger, provider_id):
    client = app.test_client()
    assert_signed_in(app, sign_in(client, provider_id))
    assert forger.jwks_fetches == 1
    forger.rotate("forger-2")
    return client


def test_a_rotated_key_is_fetched(app, forger, provider_id, monkeypatch):
    client = _rotated_after_one_sign_in(app, forger, provider_id)
    monkeypatch.setattr(id_token, "REFETCH_INTERVAL", 0)
    meta = assert_signed_in(app, sign_in(client, provider_id))
    assert forger.jwks_fetches == 2
    with app.app_context():
        assert count(Account) == 1 and meta["account_id"] == str(db.session.scalar(select(Account.id)))


def test_an_unknown_kid_soon_after_a_fetch_is_refused_without_fetching(app, forger, provider_id):
    client = _rotated_after_one_sign_in(app, forger, provider_id)
    response = sign_in(client, provider_id)
    assert error_of(response, 401)["code"] == "sso_failed"
    assert forger.jwks_fetches == 1  # the key set was fetched less than REFETCH_INTERVAL ago
    with app.app_context():
        assert count(AccountSession) == 1  # the first sign-in's only
        (event,) = failures()
        assert "does not publish (kid 'forger-2'" in event.changes["reason"]
