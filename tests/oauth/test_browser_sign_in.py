"""The authorization code flow with PKCE end to end through the real pages in headless Chromium,
with Authlib's client as the relying party: it builds the authorization URL, exchanges the code
with its verifier, validates the ID token against the JWKS (joserfc, Authlib's CodeIDToken
rules), calls userinfo, refreshes, and logs the person out (RP-initiated logout)."""
import time

import pyotp
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from iam.extensions import db
from iam.models import AccountSession, AuditEvent
from tests.helpers import PASSWORD

SCOPE = "openid profile email roles offline_access"


@pytest.fixture
def person(factory):
    org = factory.organization(slug="acme", name="Acme")
    someone = factory.person(org, first_name="Ada", last_name="Lovelace", picture_url="https://pics.example/ada.png")
    return factory.account(email="ada@acme.example", organization_id=org.id, person_id=someone.id,
                           roles=[{"name": "timesheets_editor", "scopes": {}}])


def discover(issuer):
    answer = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    assert answer.status_code == 200
    return answer.json()


def relying_party_session(client_id, secret, rp, **kw):
    return OAuth2Session(client_id, secret, scope=SCOPE, redirect_uri=rp.redirect_uri,
                         code_challenge_method="S256", **kw)


def sign_in(page, email, password=PASSWORD, shots=None):
    page.wait_for_selector("input[name=email]")
    if shots:
        page.shot(f"{shots}-1-email")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("input[name=password]")
    if shots:
        page.shot(f"{shots}-2-password")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def validate_id_token(issuer, id_token, client_id, nonce, access_token):
    jwks = KeySet.import_key_set(requests.get(discover(issuer)["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(id_token, jwks, algorithms=["RS256"])
    claims = CodeIDToken(decoded.claims, decoded.header,
                         options={"iss": {"values": [issuer]}, "aud": {"values": [client_id]}},
                         params={"nonce": nonce, "client_id": client_id, "access_token": access_token})
    claims.validate(leeway=5)
    return decoded


def test_sign_in_with_pkce_through_the_pages(app, issuer, page, relying_party, register_client, person):
    client_id, secret = register_client()
    config = discover(issuer)
    rp = relying_party_session(client_id, secret, relying_party)
    verifier, nonce = "v" * 10 + __import__("secrets").token_urlsafe(40), "n-" + __import__("secrets").token_hex(8)
    url, state = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    page.goto(url)
    assert page.url.startswith(f"{issuer}/signin")
    sign_in(page, "ada@acme.example", shots="signin")
    page.wait_for_url(f"{relying_party.redirect_uri}*")
    back = relying_party.last()
    assert back["state"] == state and back["iss"] == issuer and "code" in back
    token = rp.fetch_token(config["token_endpoint"], authorization_response=page.url, code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["refresh_token"] and token["scope"] == SCOPE
    decoded = validate_id_token(issuer, token["id_token"], client_id, nonce, token["access_token"])
    claims = decoded.claims
    assert decoded.header["kid"] in {k["kid"] for k in requests.get(config["jwks_uri"], timeout=10).json()["keys"]}
    assert claims["sub"] == str(person.id) and claims["email"] == "ada@acme.example"
    assert claims["email_verified"] is False  # made by an admin: the mailbox was never proved
    assert claims["name"] == "Ada Lovelace" and claims["given_name"] == "Ada" and claims["family_name"] == "Lovelace"
    assert claims["picture"] == "https://pics.example/ada.png" and claims["org"] == str(person.organization_id)
    assert claims["roles"] == ["timesheets_editor"] and claims["amr"] == ["pwd"]
    assert abs(claims["auth_time"] - time.time()) < 60
    # userinfo with the access token, through Authlib's session
    info = rp.get(config["userinfo_endpoint"]).json()
    assert info["sub"] == str(person.id) and info["roles"] == ["timesheets_editor"] and "nonce" not in info
    # The application's access token is not a token of this API.
    api = requests.get(f"{issuer}/api/v3/iam/accounts/me",
                       headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
    assert api.status_code == 401
    # A second authorization in the same browser needs no password (the browser session).
    url2, _ = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce=nonce + "2")
    page.goto(url2)
    page.wait_for_url(f"{relying_party.redirect_uri}*")
    # RP-initiated logout: back to the registered post-logout URI with state; the sessions end.
    page.goto(f"{config['end_session_endpoint']}?id_token_hint={token['id_token']}"
              f"&post_logout_redirect_uri={relying_party.post_logout_uri}&state=bye")
    page.wait_for_url(f"{relying_party.post_logout_uri}*")
    assert relying_party.last("/signed-out") == {"state": "bye"}
    assert rp.get(config["userinfo_endpoint"]).status_code == 401
    refused = requests.post(config["token_endpoint"], data={"grant_type": "refresh_token",
                                                            "refresh_token": token["refresh_token"]},
                            auth=(client_id, secret), timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    url3, _ = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce=nonce + "3")
    page.goto(url3)
    assert page.url.startswith(f"{issuer}/signin")  # signed out of the browser session too
    # A nonce is used once per client: a request that repeats one goes back refused.
    page.goto(url2)
    assert relying_party.last()["error"] == "invalid_request"
    with app.app_context():
        actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "login" in actions and "token_issued" in actions and "logout" in actions


def test_consent_then_second_factor_pages(app, issuer, page, relying_party, register_client, person, factory):
    """A client that asks for consent, an account with an authenticator app: password, code,
    consent; a denial goes back as access_denied."""
    client_id, secret = register_client(require_consent=True, client_type="public", token_endpoint_auth_method="none")
    assert secret is None
    seed = pyotp.random_base32()
    _totp(app, person, seed)
    config = discover(issuer)
    rp = OAuth2Session(client_id, None, scope="openid email", redirect_uri=relying_party.redirect_uri,
                       code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = __import__("secrets").token_urlsafe(48)
    url, state = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce="abc")
    page.goto(url)
    sign_in(page, "ada@acme.example")
    page.wait_for_selector("input[name=code]")
    page.shot("mfa-code")
    page.get_by_label("Code", exact=True).fill("000000" if pyotp.TOTP(seed).now() != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_selector("[role=alert]")
    assert "not accepted" in page.inner_text("[role=alert]")
    page.shot("mfa-wrong-code")
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(seed).now())
    page.get_by_role("button", name="Verify").click()
    page.wait_for_selector("text=wants to sign you in")
    page.shot("consent")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(f"{relying_party.redirect_uri}*")
    assert relying_party.last()["error"] == "access_denied" and relying_party.last()["state"] == state
    # Allowed, the code arrives and the public client trades it with its verifier alone.
    url, state = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce="def")
    page.goto(url)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{relying_party.redirect_uri}*")
    token = rp.fetch_token(config["token_endpoint"], authorization_response=page.url, code_verifier=verifier)
    claims = validate_id_token(issuer, token["id_token"], client_id, "def", token["access_token"]).claims
    assert claims["amr"] == ["pwd", "otp"] and "roles" not in claims and "name" not in claims
    assert "refresh_token" not in token  # no offline_access asked
    # Consent is remembered: the next authorization goes straight back.
    url, _ = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce="ghi")
    page.goto(url)
    page.wait_for_url(f"{relying_party.redirect_uri}*")


def _totp(app, account, seed):
    from iam import secret_store
    from iam.mfa import codes
    from iam.models import MfaFactor
    with app.app_context():
        db.session.add(MfaFactor(account_id=account.id, kind="totp", name="Phone", status="active",
                                 secret_sealed=secret_store.seal(seed, codes.MFA_SECRET_PURPOSE)))
        db.session.commit()


def test_error_pages_and_no_redirect_to_an_unregistered_uri(issuer, page, relying_party, register_client):
    client_id, _ = register_client()
    page.goto(f"{issuer}/oauth2/authorize?response_type=code&client_id={client_id}"
              f"&redirect_uri=https://evil.example/cb&scope=openid&code_challenge=x&code_challenge_method=S256")
    assert page.url.startswith(issuer)
    assert "not valid" in page.inner_text("h1")
    page.shot("error-unregistered-redirect")
    assert relying_party.arrivals() == []
    # Without JavaScript the pages still work: a CSRF-less post is refused with a page.
    answer = requests.post(f"{issuer}/signin", data={"email": "ada@acme.example"}, timeout=10)
    assert answer.status_code == 400 and "expired" in answer.text
    assert "Content-Security-Policy" in answer.headers and "script-src 'self'" in answer.headers[
        "Content-Security-Policy"]


def test_session_rows_tell_the_story(app, issuer, page, relying_party, register_client, person):
    client_id, secret = register_client()
    rp = relying_party_session(client_id, secret, relying_party)
    config = discover(issuer)
    verifier = __import__("secrets").token_urlsafe(48)
    url, _ = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce="n")
    page.goto(url)
    sign_in(page, "ada@acme.example")
    page.wait_for_url(f"{relying_party.redirect_uri}*")
    rp.fetch_token(config["token_endpoint"], authorization_response=page.url, code_verifier=verifier)
    cookies = {c["name"]: c for c in page.context.cookies()}
    browser_cookie = cookies["iam_browser"]
    assert browser_cookie["httpOnly"] and browser_cookie["sameSite"] == "Lax"
    with app.app_context():
        rows = db.session.scalars(select(AccountSession).where(AccountSession.account_id == person.id)
                                  .order_by(AccountSession.id)).all()
        assert len(rows) == 2
        browser_row, application = rows
        assert browser_row.browser_digest and browser_row.oauth_client_id is None
        assert application.parent_id == browser_row.id and application.oauth_scope == SCOPE


def test_logout_without_a_hint_asks_first(issuer, page, relying_party, register_client, person):
    """Without id_token_hint the logout page asks (a form with its CSRF token) and never
    redirects, even to a registered URI; signing out ends the browser session."""
    page.goto(f"{issuer}/signin")
    sign_in(page, "ada@acme.example")
    page.wait_for_selector("text=You are signed in")
    page.shot("signed-in")
    client_id, _ = register_client()
    page.goto(f"{issuer}/oauth2/logout?client_id={client_id}&post_logout_redirect_uri={relying_party.post_logout_uri}")
    page.wait_for_selector("text=Sign out?")
    page.shot("logout-confirm")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("text=You are signed out")
    page.shot("signed-out")
    assert page.url.startswith(issuer) and relying_party.arrivals("/signed-out") == []
    page.goto(f"{issuer}/signin")
    page.wait_for_selector("input[name=email]")
    assert "iam_browser" not in {c["name"] for c in page.context.cookies()}


CREATE_PASSKEY = """async (options) => {
  const buf = (t) => Uint8Array.from(atob(t.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - t.length % 4) % 4)),
                                     (c) => c.charCodeAt(0)).buffer;
  const txt = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  options.challenge = buf(options.challenge);
  options.user.id = buf(options.user.id);
  (options.excludeCredentials || []).forEach((c) => { c.id = buf(c.id); });
  const made = await navigator.credentials.create({publicKey: options});
  return {id: made.id, rawId: txt(made.rawId), type: made.type,
          response: {clientDataJSON: txt(made.response.clientDataJSON),
                     attestationObject: txt(made.response.attestationObject),
                     transports: made.response.getTransports()}};
}"""


def test_a_passkey_signs_in_on_the_second_factor_page(app, localhost_issuer, page, relying_party, register_client,
                                                     person):
    """Chromium's virtual authenticator (CDP WebAuthn domain) registers a passkey through the
    API and then signs in with it on the page (static/passkey.js): amr is pwd + hwk."""
    issuer = localhost_issuer
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    token = requests.post(f"{issuer}/api/v3/iam/auth/login", json={"email": "ada@acme.example", "password": PASSWORD},
                          timeout=10).json()["meta"]["token"]
    api = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.api+json",
           "Content-Type": "application/vnd.api+json"}
    created = requests.post(f"{issuer}/api/v3/iam/mfa_factors", headers=api, timeout=10, json={
        "data": {"type": "mfa_factors", "attributes": {"kind": "webauthn", "name": "Laptop"}}}).json()
    page.goto(f"{issuer}/signin")
    attestation = page.evaluate(CREATE_PASSKEY, created["meta"]["options"])
    verified = requests.post(f"{issuer}/api/v3/iam/mfa_factors/{created['data']['id']}/verify", headers=api,
                             json={"credential": attestation}, timeout=10)
    assert verified.status_code == 200, verified.text
    client_id, secret = register_client(redirect_uris=[relying_party.redirect_uri])
    config = discover(issuer)
    rp = relying_party_session(client_id, secret, relying_party)
    verifier = __import__("secrets").token_urlsafe(48)
    url, _ = rp.create_authorization_url(config["authorization_endpoint"], code_verifier=verifier, nonce="pk")
    page.goto(url)
    sign_in(page, "ada@acme.example")
    page.wait_for_selector("button[data-passkey]:visible")
    page.shot("mfa-passkey")
    page.get_by_role("button", name="Use passkey “Laptop”").click()
    page.wait_for_url(f"{relying_party.redirect_uri}*")
    token = rp.fetch_token(config["token_endpoint"], authorization_response=page.url, code_verifier=verifier)
    claims = validate_id_token(issuer, token["id_token"], client_id, "pk", token["access_token"]).claims
    assert claims["amr"] == ["pwd", "hwk"]
