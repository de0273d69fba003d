"""The authorization code grant's refusals and edges, driven without a browser: a
`requests.Session` walks the sign-in pages (they work without JavaScript) against the server
on a real socket (`issuer`), and Authlib's client makes the token calls of the relying party.

Covered: redirect URIs matched exactly (never a redirect to anything else), single-use codes
whose reuse ends what they issued, PKCE S256 only, client authentication before the code is
claimed, code expiry, CSRF on every form, refresh rotation and family revocation, introspection
and revocation, userinfo's refusals and claims by scope, discovery checked against what the
endpoints do, key rotation with tokens in flight, prompt/max_age, tenancy, and RP-initiated
logout."""
import secrets
import time
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select, update

from iam.extensions import db
from iam.models import AccountSession, AuditEvent, OAuthAuthorizationCode, OAuthConsent, utcnow
from tests.helpers import API, PASSWORD, assert_jsonapi
from tests.oauth.conftest import pkce_pair

SCOPE = "openid profile email roles offline_access"
EMAIL = "ada@acme.example"
TIMEOUT = 10


# ----------------------------------------------------------------------------- the pages


class _Forms(HTMLParser):
    """The forms of a page: [{"action", "method", "inputs": {name: value}}]."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "method": (attrs.get("method") or "get").lower(),
                               "inputs": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["inputs"][attrs["name"]] = attrs.get("value") or ""


def forms_of(html):
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_with(html, field):
    """The page's form that has an input named `field`."""
    found = [form for form in forms_of(html) if field in form["inputs"]]
    assert found, f"no form with {field!r} in:\n{html[:3000]}"
    return found[0]


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def browser():
    """A browser without JavaScript: cookies, and redirects followed (a loop is a failure)."""
    session = requests.Session()
    session.max_redirects = 10
    return session


def post_email(session, issuer, signin_page, email=EMAIL):
    """POST /signin with the email, from the sign-in page: the password page."""
    inputs = form_with(signin_page.text, "email")["inputs"]
    answer = session.post(f"{issuer}/signin", data={"email": email, "next": inputs.get("next", ""),
                                                     "csrf_token": inputs["csrf_token"]}, timeout=TIMEOUT)
    assert answer.status_code == 200 and "password" in form_with(answer.text, "password")["inputs"], answer.text[:2000]
    return answer


def post_password(session, issuer, password_page, password=PASSWORD, **overrides):
    inputs = form_with(password_page.text, "password")["inputs"]
    data = {"email": inputs["email"], "password": password, "next": inputs.get("next", ""),
            "csrf_token": inputs["csrf_token"], **overrides}
    return session.post(f"{issuer}/signin/password", data={k: v for k, v in data.items() if v is not None},
                        timeout=TIMEOUT)


def sign_in(session, issuer, signin_page, email=EMAIL, password=PASSWORD):
    """From the sign-in page through the email and password pages; where the browser ends up."""
    return post_password(session, issuer, post_email(session, issuer, signin_page, email), password)


def at_signin(answer, issuer):
    return answer.url.startswith(f"{issuer}/signin") and answer.status_code == 200 and 'name="email"' in answer.text


def authorize(session, issuer, params, email=EMAIL, password=PASSWORD, consent=None):
    """GET the authorization URL as a browser would, signing in on the pages when they ask;
    with `consent` ("allow" or "deny") the consent page is answered. The query of the callback
    that arrives at the relying party."""
    answer = session.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT)
    if answer.url.startswith(f"{issuer}/signin"):
        answer = sign_in(session, issuer, answer, email, password)
    if consent is not None and answer.url.startswith(f"{issuer}/oauth2/authorize"):
        form = form_with(answer.text, "csrf_token")
        answer = session.post(f"{issuer}{form['action']}", data={"csrf_token": form["inputs"]["csrf_token"],
                                                                   "decision": consent}, timeout=TIMEOUT)
    assert not answer.url.startswith(issuer), (answer.status_code, answer.url, answer.text[:2000])
    assert answer.status_code == 200  # the relying party's page
    return query_of(answer.url)


# ----------------------------------------------------------------------------- the application


class Application:
    """A registered client and what its relying party does: authorization requests, the code's
    exchange (Authlib's OAuth2Session), and plain token requests for the refusals."""

    def __init__(self, issuer, rp, client_id, secret, method="client_secret_basic", scope=SCOPE):
        self.issuer, self.rp, self.client_id, self.secret = issuer, rp, client_id, secret
        self.method, self.scope = method, scope

    @property
    def token_endpoint(self):
        return f"{self.issuer}/oauth2/token"

    def params(self, challenge=None, scope=None, **extra):
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.rp.redirect_uri,
                  "scope": scope or self.scope, "state": secrets.token_urlsafe(12),
                  "nonce": secrets.token_urlsafe(12)}
        if challenge is not None:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    def code(self, session, scope=None, pkce=True, **extra):
        """(code, verifier or None, the authorization request's params) through the pages."""
        verifier, challenge = pkce_pair() if pkce else (None, None)
        params = self.params(challenge, scope=scope, **extra)
        back = authorize(session, self.issuer, params)
        assert back.get("state") == params["state"] and back.get("iss") == self.issuer and "code" in back, back
        return back["code"], verifier, params

    def oauth(self, scope=None):
        return OAuth2Session(self.client_id, self.secret, scope=scope or self.scope,
                             redirect_uri=self.rp.redirect_uri, token_endpoint_auth_method=self.method)

    def exchange(self, code, verifier, scope=None):
        """The relying party's exchange (Authlib): the token answer."""
        kwargs = {"code_verifier": verifier} if verifier else {}
        return self.oauth(scope).fetch_token(self.token_endpoint, grant_type="authorization_code", code=code,
                                             **kwargs)

    def tokens(self, session, scope=None, **extra):
        code, verifier, _ = self.code(session, scope=scope, **extra)
        return self.exchange(code, verifier, scope)

    def auth(self, data):
        """requests' `auth` and the body, as this client authenticates."""
        if self.method == "client_secret_basic":
            return (self.client_id, self.secret), data
        if self.method == "client_secret_post":
            return None, {**data, "client_id": self.client_id, "client_secret": self.secret}
        return None, {**data, "client_id": self.client_id}

    def post(self, path, data, auth=None):
        """A POST to an endpoint of the server, authenticated as this client unless `auth`."""
        if auth is None:
            auth, data = self.auth(data)
        return requests.post(f"{self.issuer}{path}", data=data, auth=auth, timeout=TIMEOUT)

    def token_request(self, data, auth=None):
        return self.post("/oauth2/token", data, auth)

    def redeem(self, code, verifier=None, auth=None, **extra):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.rp.redirect_uri, **extra}
        if verifier:
            data["code_verifier"] = verifier
        return self.token_request(data, auth)

    def refresh(self, refresh_token, auth=None):
        return self.token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, auth)

    def introspect(self, token, **extra):
        return self.post("/oauth2/introspect", {"token": token, **extra})

    def revoke(self, token, **extra):
        return self.post("/oauth2/revoke", {"token": token, **extra})


def oauth_error(answer, status, error):
    """The answer is an OAuth error JSON with this status and error code."""
    assert answer.status_code == status, (answer.status_code, answer.text[:1000])
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers["Content-Type"]
    body = answer.json()
    assert body["error"] == error, body
    return body


def userinfo(issuer, token, method="GET"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{issuer}/oauth2/userinfo", headers=headers, timeout=TIMEOUT)


def bearer_error(answer, status, error):
    body = oauth_error(answer, status, error)
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and f'error="{error}"' in challenge, challenge
    return body


def error_page(answer, issuer, status=400):
    """An HTML error page answered at the server's origin (no redirect)."""
    assert answer.status_code == status, (answer.status_code, answer.headers.get("Location"), answer.text[:1000])
    assert answer.url.startswith(issuer) and "Location" not in answer.headers
    assert answer.headers["Content-Type"].startswith("text/html")
    return answer.text


def discover(issuer):
    answer = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
    assert answer.status_code == 200
    return answer.json()


def jwks_of(issuer):
    return KeySet.import_key_set(requests.get(f"{issuer}/oauth2/jwks", timeout=TIMEOUT).json())


def audit_actions(app):
    with app.app_context():
        return [event.action for event in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def person(factory):
    org = factory.organization(slug="acme", name="Acme")
    someone = factory.person(org, first_name="Ada", last_name="Lovelace")
    return factory.account(email=EMAIL, organization_id=org.id, person_id=someone.id,
                           roles=[{"name": "timesheets_editor", "scopes": {}}])


@pytest.fixture
def application(issuer, relying_party, register_client, person):
    """A confidential client (client_secret_basic) with the code and refresh grants."""
    client_id, secret = register_client()
    return Application(issuer, relying_party, client_id, secret)


@pytest.fixture
def public_application(issuer, relying_party, register_client, person):
    client_id, secret = register_client(name="Mobile", client_type="public", token_endpoint_auth_method="none")
    assert secret is None
    return Application(issuer, relying_party, client_id, None, method="none")


# ----------------------------------------------------------------------------- 1. redirect URIs


def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(issuer, relying_party, application):
    registered = relying_party.redirect_uri
    near_misses = ["https://evil.example/callback", registered + "/", registered + "?next=1", registered + "#x",
                   registered.replace("/callback", "/Callback"), registered.replace("/callback", "/x/../callback"),
                   registered.replace("127.0.0.1", "localhost")]
    signed_in = browser()
    application.code(signed_in)
    arrived = len(relying_party.arrivals())
    for uri in near_misses:
        params = application.params(pkce_pair()[1], redirect_uri=uri)
        answer = requests.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT, allow_redirects=False)
        page = error_page(answer, issuer)
        assert "not valid" in page and "invalid_request" in page, uri
        # Signed in, it is no different: the request itself is refused before anything else.
        answer = signed_in.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT, allow_redirects=False)
        error_page(answer, issuer)
    assert len(relying_party.arrivals()) == arrived


def test_an_unknown_client_gets_an_error_page_and_no_redirect(issuer, relying_party, application):
    params = application.params(pkce_pair()[1], client_id="no-such-client")
    answer = requests.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT, allow_redirects=False)
    assert "invalid_client" in error_page(answer, issuer)
    assert relying_party.arrivals() == []


def test_a_missing_redirect_uri_gets_an_error_page(issuer, relying_party, application):
    params = application.params(pkce_pair()[1], redirect_uri=None)
    assert "redirect_uri" not in params
    answer = requests.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT, allow_redirects=False)
    assert "invalid_request" in error_page(answer, issuer)
    assert relying_party.arrivals() == []


# ----------------------------------------------------------------------------- 2. a reused code


def test_a_reused_code_is_refused_and_ends_the_tokens_it_issued(app, issuer, application):
    code, verifier, _ = application.code(browser())
    token = application.exchange(code, verifier)
    assert userinfo(issuer, token["access_token"]).status_code == 200
    oauth_error(application.redeem(code, verifier), 400, "invalid_grant")
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")
    oauth_error(application.refresh(token["refresh_token"]), 400, "invalid_grant")
    for issued in (token["access_token"], token["refresh_token"]):
        answer = application.introspect(issued)
        assert answer.status_code == 200 and answer.json() == {"active": False}
    assert "token_reuse" in audit_actions(app)
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "token_reuse")).one()
        assert event.changes == {"reused": "authorization_code", "client_id": application.client_id}


# ----------------------------------------------------------------------------- 3. PKCE


def test_a_public_client_without_a_code_challenge_is_sent_back_with_invalid_request(issuer, relying_party,
                                                                                     public_application):
    params = public_application.params()
    back = authorize(browser(), issuer, params)  # refused before any sign-in
    assert back["error"] == "invalid_request" and back["state"] == params["state"]
    assert "code" not in back and relying_party.arrivals() != []


def test_authorization_error_responses_name_the_issuer(issuer, public_application):
    """RFC 9207 section 2: `iss` in every authorization response, error responses included (the
    discovery document says authorization_response_iss_parameter_supported)."""
    assert discover(issuer)["authorization_response_iss_parameter_supported"] is True
    back = authorize(browser(), issuer, public_application.params())  # no PKCE: invalid_request
    assert back["error"] == "invalid_request"
    assert back.get("iss") == issuer, back


def test_only_s256_challenges_are_accepted(issuer, public_application, application):
    """`plain`, a challenge without its method (RFC 7636 reads it as plain), any other spelling."""
    verifier, _ = pkce_pair()
    session = browser()
    for method in ("plain", None, "s256", "S512"):
        for client in (public_application, application):  # public or confidential alike
            params = client.params(code_challenge=verifier, code_challenge_method=method)
            back = authorize(session, issuer, params)
            assert back["error"] == "invalid_request" and back["state"] == params["state"], (method, back)
            assert "code" not in back


def test_a_wrong_code_verifier_is_invalid_grant(app, public_application):
    code, verifier, _ = public_application.code(browser())
    other_verifier, _ = pkce_pair()
    body = oauth_error(public_application.redeem(code, other_verifier), 400, "invalid_grant")
    assert "access_token" not in body
    assert count(app, AccountSession, AccountSession.oauth_client_id.isnot(None)) == 0
    # A refused exchange claims nothing (its claim of the code rolls back with it): the client
    # that holds the verifier still trades the code, once.
    assert public_application.exchange(code, verifier)["access_token"]
    oauth_error(public_application.redeem(code, verifier), 400, "invalid_grant")


def test_a_missing_code_verifier_is_refused(public_application, application):
    session = browser()
    for client in (public_application, application):  # public or confidential alike
        code, verifier, _ = client.code(session)
        body = oauth_error(client.redeem(code), 400, "invalid_request")
        assert "code_verifier" in body["error_description"] and "access_token" not in body
        assert client.exchange(code, verifier)["access_token"]  # the refused request did not spend it


def test_a_code_verifier_without_a_challenge_is_refused(application):
    """RFC 9700 section 4.8: a verifier where the request sent no challenge is refused."""
    code, _, _ = application.code(browser(), pkce=False)
    oauth_error(application.redeem(code, pkce_pair()[0]), 400, "invalid_request")


def test_a_confidential_client_may_do_without_pkce(application):
    code, verifier, _ = application.code(browser(), pkce=False)
    assert verifier is None
    assert application.exchange(code, None)["access_token"]


# ----------------------------------------------------------------------------- 4. client authentication


def test_a_wrong_client_secret_is_invalid_client_and_leaves_the_code_usable(issuer, application, register_client,
                                                                             relying_party):
    code, verifier, _ = application.code(browser())
    body = oauth_error(application.redeem(code, verifier, auth=(application.client_id, "not-the-secret")), 401,
                       "invalid_client")
    assert "access_token" not in body
    # Another registered client's own credentials do not find the code either.
    other_id, other_secret = register_client(name="Other")
    oauth_error(application.redeem(code, verifier, auth=(other_id, other_secret)), 400, "invalid_grant")
    # Client authentication comes before the code is claimed (grants.CodeGrant): still good.
    token = application.exchange(code, verifier)
    assert token["access_token"] and token["id_token"]


def test_a_client_authenticates_only_the_way_it_is_registered(application):
    code, verifier, _ = application.code(browser())
    posted = application.redeem(code, verifier, auth=False, client_id=application.client_id,
                                client_secret=application.secret)
    oauth_error(posted, 401, "invalid_client")
    oauth_error(application.redeem(code, verifier, auth=False, client_id=application.client_id), 401,
                "invalid_client")
    assert application.exchange(code, verifier)["access_token"]


# ----------------------------------------------------------------------------- 5. expiry


def test_an_expired_code_is_invalid_grant(app, application):
    code, verifier, _ = application.code(browser())
    with app.app_context():
        row = db.session.scalars(select(OAuthAuthorizationCode)).one()
        assert row.expires_at - row.created_at == timedelta(seconds=60)  # the contract's 60 seconds
        db.session.execute(update(OAuthAuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    oauth_error(application.redeem(code, verifier), 400, "invalid_grant")
    assert count(app, AccountSession, AccountSession.oauth_client_id.isnot(None)) == 0


# ----------------------------------------------------------------------------- 6. CSRF on every form


def expired(answer, what=""):
    assert answer.status_code == 400 and "expired" in answer.text, (what, answer.status_code, answer.text[:1000])
    assert answer.headers["Content-Type"].startswith("text/html") and "iam_browser" not in answer.cookies


def nothing_issued(app, relying_party, person):
    assert relying_party.arrivals() == []
    assert count(app, AccountSession, AccountSession.account_id == person.id) == 0
    assert count(app, OAuthAuthorizationCode) == 0
    assert "login" not in audit_actions(app)


def refused_csrf_tokens(issuer, good):
    """(what, the csrf_token to send or None for none): missing, tampered with, another browser's."""
    stranger = browser().get(f"{issuer}/signin", timeout=TIMEOUT)
    other = form_with(stranger.text, "email")["inputs"]["csrf_token"]
    assert other != good
    return [("missing", None), ("tampered", good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")),
            ("another browser's", other)]


def test_the_email_form_needs_its_csrf_token(app, issuer, relying_party, application, person):
    session = browser()
    page = session.get(f"{issuer}/oauth2/authorize", params=application.params(pkce_pair()[1]), timeout=TIMEOUT)
    inputs = form_with(page.text, "email")["inputs"]
    for what, token in refused_csrf_tokens(issuer, inputs["csrf_token"]):
        data = {"email": EMAIL, "next": inputs["next"], "csrf_token": token}
        expired(session.post(f"{issuer}/signin", data={k: v for k, v in data.items() if v is not None},
                             timeout=TIMEOUT), what)
    assert 'type="password"' in post_email(session, issuer, page).text  # with its token it goes on


def test_the_password_form_needs_its_csrf_token(app, issuer, relying_party, application, person):
    session = browser()
    page = session.get(f"{issuer}/oauth2/authorize", params=application.params(pkce_pair()[1]), timeout=TIMEOUT)
    password_page = post_email(session, issuer, page)
    good = form_with(password_page.text, "password")["inputs"]["csrf_token"]
    for what, token in refused_csrf_tokens(issuer, good):
        expired(post_password(session, issuer, password_page, csrf_token=token), what)
    nothing_issued(app, relying_party, person)
    assert post_password(session, issuer, password_page).url.startswith(relying_party.redirect_uri)


@pytest.fixture
def totp_seed(app, person):
    from iam import secret_store
    from iam.mfa import codes
    from iam.models import MfaFactor
    seed = pyotp.random_base32()
    with app.app_context():
        db.session.add(MfaFactor(account_id=person.id, kind="totp", name="Phone", status="active",
                                 secret_sealed=secret_store.seal(seed, codes.MFA_SECRET_PURPOSE)))
        db.session.commit()
    return seed


def test_the_second_factor_form_needs_its_csrf_token(app, issuer, relying_party, application, person, totp_seed):
    session = browser()
    page = session.get(f"{issuer}/oauth2/authorize", params=application.params(pkce_pair()[1]), timeout=TIMEOUT)
    mfa_page = sign_in(session, issuer, page)
    assert mfa_page.url.startswith(f"{issuer}/signin/mfa") and mfa_page.status_code == 200
    inputs = form_with(mfa_page.text, "code")["inputs"]
    code = pyotp.TOTP(totp_seed).now()
    for what, token in refused_csrf_tokens(issuer, inputs["csrf_token"]):
        data = {"code": code, "next": inputs["next"], "csrf_token": token}
        expired(session.post(f"{issuer}/signin/mfa", data={k: v for k, v in data.items() if v is not None},
                             timeout=TIMEOUT), what)
    nothing_issued(app, relying_party, person)
    # The code was not spent by the refused forms: with its token, the same code signs in.
    answer = session.post(f"{issuer}/signin/mfa", data={"code": code, "next": inputs["next"],
                                                         "csrf_token": inputs["csrf_token"]}, timeout=TIMEOUT)
    assert answer.url.startswith(relying_party.redirect_uri) and "code" in query_of(answer.url)


def test_the_consent_form_needs_its_csrf_token(app, issuer, relying_party, register_client, person):
    client_id, secret = register_client(require_consent=True)
    client = Application(issuer, relying_party, client_id, secret)
    session = browser()
    params = client.params(pkce_pair()[1])
    page = session.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT)
    consent_page = sign_in(session, issuer, page)
    assert consent_page.url.startswith(f"{issuer}/oauth2/authorize") and "wants to sign you in" in consent_page.text
    form = form_with(consent_page.text, "csrf_token")
    for what, token in refused_csrf_tokens(issuer, form["inputs"]["csrf_token"]):
        data = {"decision": "allow", "csrf_token": token}
        expired(session.post(f"{issuer}{form['action']}", data={k: v for k, v in data.items() if v is not None},
                             timeout=TIMEOUT), what)
    assert relying_party.arrivals() == [] and count(app, OAuthAuthorizationCode) == 0
    assert count(app, OAuthConsent) == 0 and "consent_given" not in audit_actions(app)
    answer = session.post(f"{issuer}{form['action']}", data={"decision": "allow",
                                                               "csrf_token": form["inputs"]["csrf_token"]},
                          timeout=TIMEOUT)
    assert query_of(answer.url)["state"] == params["state"] and "code" in query_of(answer.url)
    assert count(app, OAuthConsent) == 1


# ----------------------------------------------------------------------------- 7. refresh tokens


def test_refresh_tokens_rotate_and_a_reused_one_ends_the_family(app, issuer, application):
    first = application.tokens(browser())
    assert first["refresh_token"] and first["scope"] == SCOPE
    second = application.oauth().refresh_token(application.token_endpoint, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert userinfo(issuer, second["access_token"]).status_code == 200
    third = application.oauth().refresh_token(application.token_endpoint, refresh_token=second["refresh_token"])
    oauth_error(application.refresh(first["refresh_token"]), 400, "invalid_grant")
    # The family ends: the newest pair is dead too.
    oauth_error(application.refresh(third["refresh_token"]), 400, "invalid_grant")
    bearer_error(userinfo(issuer, third["access_token"]), 401, "invalid_token")
    assert application.introspect(third["refresh_token"]).json() == {"active": False}
    assert "token_reuse" in audit_actions(app)


def test_no_refresh_token_without_offline_access(application):
    token = application.tokens(browser(), scope="openid email")
    assert "refresh_token" not in token and token["scope"] == "openid email"


def test_another_clients_credentials_cannot_refresh(application, register_client, issuer, relying_party):
    token = application.tokens(browser())
    other = Application(issuer, relying_party, *register_client(name="Other"))
    oauth_error(other.refresh(token["refresh_token"]), 400, "invalid_grant")
    # Refused before it was claimed: its own client still refreshes with it.
    assert application.refresh(token["refresh_token"]).status_code == 200


def test_application_and_api_refresh_tokens_stay_apart(app, issuer, application, client, person):
    token = application.tokens(browser())
    answer = requests.post(f"{issuer}{API}/auth/refresh", json={"refresh_token": token["refresh_token"]},
                           headers={"Accept": "application/vnd.api+json"}, timeout=TIMEOUT)
    assert answer.status_code == 401, answer.text
    assert answer.json()["errors"][0]["status"] == "401"
    assert application.refresh(token["refresh_token"]).status_code == 200  # not spent there
    login = assert_jsonapi(client.post("/auth/login", {"email": EMAIL, "password": PASSWORD}), 200)
    api_refresh = login["meta"]["refresh_token"]
    oauth_error(application.refresh(api_refresh), 400, "invalid_grant")
    assert_jsonapi(client.post("/auth/refresh", {"refresh_token": api_refresh}), 200)  # not spent here


# ----------------------------------------------------------------------------- 8. introspection, revocation


def test_introspection_tells_a_confidential_client_about_its_tokens(app, issuer, application, person):
    token = application.tokens(browser())
    access = application.introspect(token["access_token"])
    assert access.status_code == 200
    body = access.json()
    assert body["active"] is True and body["sub"] == str(person.id) and body["client_id"] == application.client_id
    assert body["scope"] == SCOPE and body["exp"] > time.time() and body["iss"] == issuer
    assert body["token_type"] == "Bearer" and body["aud"] == application.client_id
    refresh = application.introspect(token["refresh_token"], token_type_hint="refresh_token").json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert refresh["sub"] == str(person.id) and refresh["client_id"] == application.client_id
    # Only with the client's credentials.
    assert application.post("/oauth2/introspect", {"token": token["access_token"]},
                            auth=(application.client_id, "wrong")).status_code == 401
    revoked = application.revoke(token["refresh_token"], token_type_hint="refresh_token")
    assert revoked.status_code == 200
    for issued in (token["access_token"], token["refresh_token"]):
        assert application.introspect(issued).json() == {"active": False}
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")
    assert "token_revoked" in audit_actions(app)


def test_revoking_the_access_token_ends_the_refresh_token(application):
    token = application.tokens(browser())
    assert application.revoke(token["access_token"], token_type_hint="access_token").status_code == 200
    oauth_error(application.refresh(token["refresh_token"]), 400, "invalid_grant")


def test_a_public_client_revokes_its_own_refresh_token_but_cannot_introspect(issuer, public_application,
                                                                             application):
    token = public_application.tokens(browser())
    assert token["refresh_token"]
    oauth_error(public_application.introspect(token["access_token"]), 401, "invalid_client")
    # Another client may not revoke it (RFC 7009: the token is not theirs).
    oauth_error(application.revoke(token["refresh_token"]), 400, "invalid_grant")
    answer = public_application.revoke(token["refresh_token"], token_type_hint="refresh_token")
    assert answer.status_code == 200
    oauth_error(public_application.refresh(token["refresh_token"]), 400, "invalid_grant")
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")


# ----------------------------------------------------------------------------- 9. userinfo


def test_userinfo_by_get_and_post(issuer, application, person):
    token = application.tokens(browser())["access_token"]
    got = userinfo(issuer, token)
    assert got.status_code == 200 and got.json()["sub"] == str(person.id)
    posted = userinfo(issuer, token, "POST")
    assert posted.status_code == 200 and posted.json() == got.json()
    in_body = requests.post(f"{issuer}/oauth2/userinfo", data={"access_token": token}, timeout=TIMEOUT)
    assert in_body.status_code == 200 and in_body.json() == got.json()


def test_userinfo_without_a_valid_token_is_401(issuer, application):
    id_token = application.tokens(browser())["id_token"]
    for method in ("GET", "POST"):
        bearer_error(userinfo(issuer, None, method), 401, "invalid_token")
        bearer_error(userinfo(issuer, "not-a-token", method), 401, "invalid_token")
        bearer_error(userinfo(issuer, id_token, method), 401, "invalid_token")  # an ID token is no access token


def test_userinfo_refuses_a_client_credentials_token(issuer, factory, register_client, person):
    robot = factory.account(email="robot@acme.example", organization_id=person.organization_id,
                            account_type="service_account", password=False)
    client_id, secret = register_client(name="Export", organization_id=person.organization_id,
                                        grant_types=["client_credentials"], redirect_uris=[],
                                        post_logout_redirect_uris=[], scopes=["openid", "roles"],
                                        service_account_id=robot.id)
    token = OAuth2Session(client_id, secret, scope="openid roles").fetch_token(
        f"{issuer}/oauth2/token", grant_type="client_credentials")
    assert "openid" in token["scope"].split()
    claims = jwt.decode(token["access_token"], jwks_of(issuer)).claims
    assert claims["aud"] == issuer  # a token for this API, not for an application
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")


def test_userinfo_needs_the_openid_scope(issuer, application):
    token = application.tokens(browser(), scope="profile email")
    assert "id_token" not in token
    bearer_error(userinfo(issuer, token["access_token"]), 403, "insufficient_scope")


def test_userinfo_claims_follow_the_scopes(app, issuer, application, person, factory):
    factory.role(person, "former_role", expires_at=utcnow() - timedelta(minutes=1))
    factory.role(person, "future_role", not_before=utcnow() + timedelta(days=1))
    session = browser()
    bare = userinfo(issuer, application.tokens(session, scope="openid")["access_token"]).json()
    assert bare == {"sub": str(person.id), "org": str(person.organization_id)}
    email = userinfo(issuer, application.tokens(session, scope="openid email")["access_token"]).json()
    assert email["email"] == EMAIL and email["email_verified"] is False
    assert "roles" not in email and "name" not in email
    profile = userinfo(issuer, application.tokens(session, scope="openid profile")["access_token"]).json()
    assert profile["name"] == "Ada Lovelace" and profile["given_name"] == "Ada" and "email" not in profile
    roles = userinfo(issuer, application.tokens(session, scope="openid roles")["access_token"]).json()
    assert roles["roles"] == ["timesheets_editor"] and "email" not in roles


# ----------------------------------------------------------------------------- 10. discovery


def test_discovery_is_valid_and_names_this_issuer(issuer):
    document = discover(issuer)
    OpenIDProviderMetadata(document).validate()
    assert document["issuer"] == issuer
    assert document["response_types_supported"] == ["code"]


def test_every_discovered_endpoint_answers_its_method(issuer):
    document = discover(issuer)
    methods = {"authorization_endpoint": ["GET"], "token_endpoint": ["POST"], "userinfo_endpoint": ["GET", "POST"],
               "introspection_endpoint": ["POST"], "revocation_endpoint": ["POST"],
               "end_session_endpoint": ["GET", "POST"], "jwks_uri": ["GET"]}
    named = {key for key in document if key.endswith("_endpoint")} | {"jwks_uri"}
    assert named == set(methods), named
    for key, allowed in methods.items():
        assert document[key].startswith(f"{issuer}/")
        for method in allowed:
            answer = requests.request(method, document[key], timeout=TIMEOUT, allow_redirects=False)
            assert answer.status_code not in (404, 405), (key, method, answer.status_code)
        if "GET" not in allowed:  # the check tells methods apart
            assert requests.get(document[key], timeout=TIMEOUT).status_code == 405, key


def test_the_jwks_publishes_the_signing_key_before_the_first_token(issuer, application):
    """A relying party may fetch the JWKS before anyone signed in (and cache it: max-age=300):
    the key that will sign the first ID token must be in it already."""
    early = requests.get(f"{issuer}/oauth2/jwks", timeout=TIMEOUT)
    assert early.status_code == 200 and "max-age" in early.headers["Cache-Control"]
    published = {key["kid"] for key in early.json()["keys"]}
    id_token = application.tokens(browser())["id_token"]
    kid = jwt.decode(id_token, jwks_of(issuer)).header["kid"]
    assert kid in published, f"the first ID token's key {kid} was not in the JWKS served before it: {published}"


def test_the_discovered_code_challenge_methods_are_the_ones_that_work(issuer, public_application):
    document = discover(issuer)
    assert document["code_challenge_methods_supported"] == ["S256"]
    session = browser()
    for method in document["code_challenge_methods_supported"]:
        verifier, challenge = pkce_pair()
        params = public_application.params(code_challenge=challenge, code_challenge_method=method)
        back = authorize(session, issuer, params)
        assert public_application.exchange(back["code"], verifier)["access_token"], method
    assert "plain" not in document["code_challenge_methods_supported"]
    verifier, _ = pkce_pair()
    back = authorize(session, issuer, public_application.params(code_challenge=verifier, code_challenge_method="plain"))
    assert back["error"] == "invalid_request"


def test_every_discovered_token_endpoint_auth_method_is_accepted(issuer, relying_party, register_client, person):
    document = discover(issuer)
    methods = document["token_endpoint_auth_methods_supported"]
    assert set(methods) == {"client_secret_basic", "client_secret_post", "none"}
    session = browser()
    for method in methods:
        client_type = "public" if method == "none" else "confidential"
        client = Application(issuer, relying_party, *register_client(name=method, client_type=client_type,
                                                                     token_endpoint_auth_method=method),
                             method=method)
        code, verifier, _ = client.code(session)
        answer = client.redeem(code, verifier)  # plain requests, as Application.auth says
        assert answer.status_code == 200, (method, answer.text)
        assert answer.json()["access_token"]
        assert client.tokens(session)["access_token"]  # and through Authlib's client


def test_only_the_discovered_response_type_is_served(issuer, relying_party, application):
    document = discover(issuer)
    assert document["response_types_supported"] == ["code"]
    for response_type in ("token", "id_token", "code id_token"):
        params = application.params(pkce_pair()[1], response_type=response_type)
        back = authorize(browser(), issuer, params)
        assert back["error"] == "unsupported_response_type" and back["state"] == params["state"], back
        assert "code" not in back and "access_token" not in back


def test_the_discovered_signing_alg_is_the_id_tokens(issuer, application):
    document = discover(issuer)
    id_token = application.tokens(browser())["id_token"]
    header = jwt.decode(id_token, jwks_of(issuer)).header
    assert header["alg"] in document["id_token_signing_alg_values_supported"]
    assert header["kid"] in {key["kid"] for key in requests.get(document["jwks_uri"], timeout=TIMEOUT).json()["keys"]}


def test_the_discovered_scopes_are_those_a_client_can_register(admin, issuer, register_client):
    document = discover(issuer)
    assert set(document["scopes_supported"]) >= {"openid"}
    assert register_client(name="All scopes", scopes=document["scopes_supported"])[0]
    refused = admin.post("/oauth_clients", {"data": {"type": "oauth_clients", "attributes": {
        "name": "More", "redirect_uris": ["https://x.example/cb"], "scopes": ["openid", "address"]}}})
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["source"]["pointer"].startswith("/data/attributes/scopes")


# ----------------------------------------------------------------------------- 11. key rotation


def test_key_rotation_keeps_tokens_in_flight(app, issuer, application):
    session = browser()
    before = application.tokens(session)
    old_kid = jwt.decode(before["id_token"], jwks_of(issuer)).header["kid"]
    done = app.test_cli_runner().invoke(args=["iam", "rotate-signing-key"])
    assert done.exit_code == 0 and "new RS256 signing key" in done.output, done.output
    published = jwks_of(issuer)
    assert old_kid in {key.kid for key in published.keys}
    assert jwt.decode(before["id_token"], published, algorithms=["RS256"]).claims["aud"] == application.client_id
    assert userinfo(issuer, before["access_token"]).status_code == 200
    assert application.introspect(before["access_token"]).json()["active"] is True
    after = application.tokens(session)
    new_kid = jwt.decode(after["id_token"], jwks_of(issuer)).header["kid"]
    assert new_kid != old_kid and new_kid in {key.kid for key in jwks_of(issuer).keys}
    assert jwt.decode(after["access_token"], jwks_of(issuer)).header["kid"] == new_kid
    # The old refresh token still refreshes, into tokens of the new key.
    refreshed = application.oauth().refresh_token(application.token_endpoint, refresh_token=before["refresh_token"])
    assert jwt.decode(refreshed["access_token"], jwks_of(issuer)).header["kid"] == new_kid


# ----------------------------------------------------------------------------- 12. prompt, max_age, tenancy


def test_prompt_none_without_a_browser_session_is_login_required(issuer, relying_party, application):
    params = application.params(pkce_pair()[1], prompt="none")
    answer = requests.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT, allow_redirects=False)
    assert answer.status_code in (302, 303) and answer.headers["Location"].startswith(relying_party.redirect_uri)
    back = query_of(answer.headers["Location"])
    assert back["error"] == "login_required" and back["state"] == params["state"]


def test_prompt_none_with_a_browser_session_issues_a_code(issuer, application):
    session = browser()
    application.code(session)
    back = authorize(session, issuer, application.params(pkce_pair()[1], prompt="none"))
    assert "code" in back and "error" not in back


def test_max_age_zero_after_sign_in_asks_to_sign_in_again(app, issuer, application):
    session = browser()
    application.code(session)
    verifier, challenge = pkce_pair()
    params = application.params(challenge, max_age="0")
    answer = session.get(f"{issuer}/oauth2/authorize", params=params, timeout=TIMEOUT, allow_redirects=False)
    assert answer.status_code == 303 and urlsplit(answer.headers["Location"]).path == "/signin"
    try:
        page = session.get(f"{issuer}{answer.headers['Location']}", timeout=TIMEOUT)
    except requests.TooManyRedirects as loop:
        pytest.fail(f"max_age=0: the sign-in page and the authorization endpoint redirect to each other "
                    f"({loop.response.url if loop.response is not None else ''})")
    assert at_signin(page, issuer), (page.status_code, page.url, page.text[:1000])
    signed_in_at = time.time()
    back = query_of(sign_in(session, issuer, page).url)
    assert "code" in back, back
    claims = jwt.decode(application.exchange(back["code"], verifier)["id_token"], jwks_of(issuer)).claims
    assert claims["auth_time"] >= int(signed_in_at) - 1


def test_a_recent_enough_sign_in_satisfies_max_age(issuer, application):
    session = browser()
    application.code(session)
    back = authorize(session, issuer, application.params(pkce_pair()[1], max_age="3600"))
    assert "code" in back and "error" not in back


def test_prompt_login_after_sign_in_asks_for_the_password_again(issuer, application):
    session = browser()
    application.code(session)
    _, challenge = pkce_pair()
    try:
        page = session.get(f"{issuer}/oauth2/authorize", params=application.params(challenge, prompt="login"),
                           timeout=TIMEOUT)
    except requests.TooManyRedirects:
        pytest.fail("prompt=login: a redirect loop")
    assert at_signin(page, issuer), ("prompt=login went on without a new sign-in", page.url)


def test_a_client_of_one_organization_refuses_accounts_of_another(app, issuer, relying_party, register_client,
                                                                  factory, person):
    other = factory.organization(slug="globex")
    client_id, secret = register_client(organization_id=other.id)
    client = Application(issuer, relying_party, client_id, secret)
    params = client.params(pkce_pair()[1])
    back = authorize(browser(), issuer, params)
    assert back["error"] == "access_denied" and back["state"] == params["state"] and "code" not in back
    assert count(app, OAuthAuthorizationCode) == 0
    # The same person at a client of their own organization signs in.
    own = Application(issuer, relying_party, *register_client(organization_id=person.organization_id))
    assert own.tokens(browser())["access_token"]


# ----------------------------------------------------------------------------- 13. logout


def signed_in_browser(application):
    session = browser()
    token = application.tokens(session)
    return session, token


def browser_session_row(app, person):
    with app.app_context():
        return db.session.scalars(select(AccountSession).where(AccountSession.account_id == person.id,
                                                               AccountSession.browser_digest.isnot(None))).one()


def test_logout_without_an_id_token_hint_asks_first(app, issuer, relying_party, application, person):
    session, token = signed_in_browser(application)
    url = f"{issuer}/oauth2/logout?" + urlencode({"client_id": application.client_id, "state": "bye",
                                                   "post_logout_redirect_uri": relying_party.post_logout_uri})
    page = session.get(url, timeout=TIMEOUT, allow_redirects=False)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    form = form_with(page.text, "csrf_token")
    assert form["method"] == "post"
    assert browser_session_row(app, person).revoked_at is None  # nothing ended yet
    assert userinfo(issuer, token["access_token"]).status_code == 200
    # Without its CSRF token the form is refused.
    expired(session.post(f"{issuer}{form['action']}", data={"decision": "signout"}, timeout=TIMEOUT))
    assert browser_session_row(app, person).revoked_at is None
    answer = session.post(f"{issuer}{form['action']}", data={**form["inputs"], "decision": "signout"},
                          timeout=TIMEOUT, allow_redirects=False)
    assert answer.status_code == 200 and "signed out" in answer.text  # no redirect without a hint
    assert relying_party.arrivals("/signed-out") == []
    assert browser_session_row(app, person).revoked_at is not None
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")  # opened from that session
    again = session.get(f"{issuer}/oauth2/authorize", params=application.params(pkce_pair()[1]), timeout=TIMEOUT)
    assert at_signin(again, issuer)


def test_logout_never_redirects_to_an_unregistered_uri(app, issuer, relying_party, application, person):
    session, token = signed_in_browser(application)
    for uri in ("https://evil.example/bye", relying_party.post_logout_uri + "/", relying_party.redirect_uri):
        url = f"{issuer}/oauth2/logout?" + urlencode({"id_token_hint": token["id_token"], "state": "bye",
                                                       "post_logout_redirect_uri": uri})
        answer = session.get(url, timeout=TIMEOUT, allow_redirects=False)
        assert answer.status_code == 200 and "Location" not in answer.headers, (uri, answer.status_code)
        assert "You are signed out" in answer.text
    assert relying_party.arrivals("/signed-out") == []
    assert browser_session_row(app, person).revoked_at is not None
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")


def test_logout_with_an_id_token_hint_goes_back_to_a_registered_uri(issuer, relying_party, application):
    session, token = signed_in_browser(application)
    url = f"{issuer}/oauth2/logout?" + urlencode({"id_token_hint": token["id_token"], "state": "bye",
                                                   "post_logout_redirect_uri": relying_party.post_logout_uri})
    answer = session.get(url, timeout=TIMEOUT)
    assert answer.url.startswith(relying_party.post_logout_uri)
    assert relying_party.last("/signed-out") == {"state": "bye"}
    oauth_error(application.refresh(token["refresh_token"]), 400, "invalid_grant")


def test_ending_a_browser_session_through_the_api_signs_its_applications_out(app, issuer, application, person):
    """DELETE /account_sessions/:id of a browser session ends the application sessions opened
    from it, as signing out on the page does; the person's other sessions stay."""
    _, token = signed_in_browser(application)
    api = app.test_client()
    login = api.post(f"{API}/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200
    bearer = {"Authorization": f"Bearer {login.get_json()['meta']['token']}"}
    assert userinfo(issuer, token["access_token"]).status_code == 200
    browser_row = browser_session_row(app, person)
    answer = api.delete(f"{API}/account_sessions/{browser_row.id}", headers=bearer)
    assert answer.status_code == 204, answer.get_data(as_text=True)
    bearer_error(userinfo(issuer, token["access_token"]), 401, "invalid_token")
    oauth_error(application.refresh(token["refresh_token"]), 400, "invalid_grant")
    assert api.get(f"{API}/accounts/me", headers=bearer).status_code == 200  # the API session goes on
    with app.app_context():
        rows = db.session.scalars(select(AccountSession).where(AccountSession.account_id == person.id)).all()
    assert [row.browser_digest for row in rows if row.revoked_at is None] == [None]  # the API's login alone
    assert sum(row.oauth_client_id is not None for row in rows) == 1  # the application's, now revoked
