"""The sign-in pages (iam/web/) through Flask's test client, a browser without JavaScript that
keeps its cookies: the pages' security headers and cookies, CSRF on every form, `next` that is
only ever a path of the authorization endpoint, one answer to every refused password, the
throttle and the lock shared with POST /auth/login, the second factor, enrolment forced by a
policy, signing out, and the forms' accessibility (contract sections 5, 9 and 10)."""
import re
import time
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest
from sqlalchemy import update

from iam.extensions import db
from iam.models import (
    Account,
    AccountSession,
    AuditEvent,
    IdentityProvider,
    IdentityProviderDomain,
    OAuthConsent,
    Organization,
    OrganizationalUnit,
    utcnow,
)
from iam.resources.common import digest
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of, rows
from tests.helpers import audit_actions as actions
from tests.mfa.helpers import code, enrol_totp, second_step
from tests.oauth.conftest import pkce_pair

INVALID_CREDENTIALS = "The email or password is not right, or this account cannot sign in with a password."
EXPIRED = "This form has expired"


# ------------------------------------------------------------------ reading pages

class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []  # (tag, attributes): a boolean attribute has the value None
        self.texts = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.texts.append(data)


class Page:
    """An HTML answer: its elements (start tags and their attributes) and its text."""

    def __init__(self, response):
        self.response = response
        self.html = response.get_data(as_text=True)
        parser = _Parser()
        parser.feed(self.html)
        parser.close()
        self.elements = parser.elements
        self.text = " ".join(" ".join(parser.texts).split())

    def find(self, tag, **attributes):
        """The attributes of every `tag` element that has these attribute values."""
        return [attrs for name, attrs in self.elements
                if name == tag and all(attrs.get(k.rstrip("_")) == v for k, v in attributes.items())]

    def one(self, tag, **attributes):
        found = self.find(tag, **attributes)
        assert len(found) == 1, (tag, attributes, found, self.html)
        return found[0]

    def by_id(self, element_id):
        return [(tag, attrs) for tag, attrs in self.elements if attrs.get("id") == element_id]

    @property
    def csrf(self):
        return self.one("input", name="csrf_token", type="hidden")["value"]

    def value(self, name):
        return self.one("input", name=name).get("value") or ""

    def visible_inputs(self):
        return [attrs for tag, attrs in self.elements if tag in ("input", "select", "textarea")
                and attrs.get("type") != "hidden" and "hidden" not in attrs]

    def alert(self):
        """The text of the page's role=alert elements."""
        return " ".join(" ".join(m.split()) for m in re.findall(r'role="alert"[^>]*>(.*?)<', self.html, re.DOTALL))


def page(response, status=200):
    """The response as a Page, after checking its status and that it is HTML."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:3000])
    assert response.mimetype == "text/html", response.mimetype
    return Page(response)


def location(response, status=303):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:3000])
    return response.headers["Location"]


# ------------------------------------------------------------------ driving the pages

def browser(app, address=None):
    """A new browser: a test client with its own cookie jar."""
    client = app.test_client()
    if address:
        client.environ_base["REMOTE_ADDR"] = address
    return client


def email_step(client, email, next_url=None):
    """GET /signin, then its form posted with this email: the answer to the post."""
    shown = page(client.get("/signin", query_string={"next": next_url} if next_url else None))
    return client.post("/signin", data={"csrf_token": shown.csrf, "email": email, "next": shown.value("next")})


def password_page(client, email, next_url=None):
    return page(email_step(client, email, next_url))


def password_step(client, email, password=PASSWORD, next_url=None):
    """Email, then password, as a person fills the two forms: the answer to the password's post."""
    shown = password_page(client, email, next_url)
    return client.post("/signin/password", data={"csrf_token": shown.csrf, "email": shown.value("email"),
                                                 "password": password, "next": shown.value("next")})


def code_step(client, value, next_url=None):
    """The second-factor page's form posted with this code."""
    shown = page(client.get("/signin/mfa", query_string={"next": next_url} if next_url else None))
    return client.post("/signin/mfa", data={"csrf_token": shown.csrf, "code": value, "next": shown.value("next")})


def signed_in(app, email="ada@example.com", client=None):
    """A browser signed in with the password (no second factor)."""
    client = client or browser(app)
    assert location(password_step(client, email)) == "/signin"
    assert client.get_cookie("iam_browser") is not None
    return client


def set_cookie(response, name):
    """The Set-Cookie header of `name` in this response, or None."""
    found = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{name}=")]
    assert len(found) <= 1, found
    return found[0] if found else None


def cookie_attributes(header):
    """{attribute name (lower case): value} of a Set-Cookie header."""
    parts = [part.strip() for part in header.split(";")[1:]]
    return {part.split("=", 1)[0].lower(): (part.split("=", 1)[1] if "=" in part else True) for part in parts}


def browser_sessions(app):
    return rows(app, AccountSession, AccountSession.browser_digest.isnot(None))


def page_session(app, client):
    """What the signed page session (the iam_pages cookie) holds."""
    cookie = client.get_cookie("iam_pages")
    if cookie is None:
        return {}
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


def wrong_code(secret):
    """A 6-digit code that no step near now accepts."""
    near = {pyotp.TOTP(secret).at(time.time() + step * 30) for step in range(-3, 4)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777")
                if c not in near)


@pytest.fixture
def ada(factory):
    return factory.account(email="ada@example.com")


@pytest.fixture
def ada_totp(app, factory, ada):
    """Ada's authenticator app (active): its secret."""
    _, secret = enrol_totp(ApiClient(app.test_client(), factory.token(ada)))
    return secret


@pytest.fixture
def consent_client(admin, relying_party):
    """The client_id of a registered application that asks for consent."""
    created = assert_jsonapi(admin.post("/oauth_clients", {"data": {"type": "oauth_clients", "attributes": {
        "name": "Timesheets", "client_type": "confidential", "grant_types": ["authorization_code"],
        "redirect_uris": [relying_party.redirect_uri], "scopes": ["openid", "email"],
        "token_endpoint_auth_method": "client_secret_basic", "require_consent": True}}}), 201)
    return created["data"]["attributes"]["client_id"]


@pytest.fixture
def lock_after_three(app):
    default = app.config["IAM_LOGIN_MAX_FAILURES"]
    app.config["IAM_LOGIN_MAX_FAILURES"] = 3
    yield
    app.config["IAM_LOGIN_MAX_FAILURES"] = default


@pytest.fixture
def https_issuer(app):
    default = app.config["IAM_ISSUER"]
    app.config["IAM_ISSUER"] = "https://iam.example.com"
    yield
    app.config["IAM_ISSUER"] = default


def api_login(app, email, password=PASSWORD, address=None):
    return ApiClient(browser(app, address)).post("/auth/login", {"email": email, "password": password})


def authorize_path(client_id, redirect_uri, scope="openid email", state="st-1", nonce="nonce-1"):
    _, challenge = pkce_pair()
    return "/oauth2/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
        "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})


def consent_page(app, client, client_id, redirect_uri, email="ada@example.com"):
    """Signed in (with a password only) through an authorization request of a client that asks
    for consent: (the consent page, the authorization path its form posts to)."""
    path = authorize_path(client_id, redirect_uri)
    sent = location(client.get(path))
    assert urlsplit(sent).path == "/signin"
    next_url = parse_qs(urlsplit(sent).query)["next"][0]
    assert location(password_step(client, email, next_url=next_url)) == next_url
    shown = page(client.get(next_url))
    assert "wants to sign you in" in shown.text
    action = shown.one("form", method="post")["action"]
    return shown, action


# ------------------------------------------------------------------ 1. security headers

def assert_page_headers(response):
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in policy.split(";") if d.strip()}
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, policy
    assert directives.get("default-src") == "default-src 'none'", policy
    assert directives.get("script-src") == "script-src 'self'", policy
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", policy
    assert headers.get("X-Frame-Options") == "DENY", dict(headers)
    assert headers.get("Referrer-Policy") == "no-referrer", dict(headers)
    assert headers.get("Cache-Control") == "no-store", dict(headers)
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)
    assert response.mimetype == "text/html" and "charset=utf-8" in headers["Content-Type"].lower(), headers


def test_every_page_has_the_security_headers(app, factory, ada_totp, consent_client, relying_party,
                                            three_failures_a_minute):
    factory.account(email="grace@example.com")
    client = browser(app)
    shown = {}
    shown["email"] = client.get("/signin")
    shown["password"] = email_step(client, "ada@example.com")
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    shown["mfa"] = client.get("/signin/mfa")
    shown["wrong code"] = code_step(client, wrong_code(ada_totp))
    assert shown["wrong code"].status_code == 401
    shown["error"] = client.get("/signin/sso")  # no sso_code: an error page
    shown["expired form"] = client.post("/signin", data={"email": "ada@example.com"})
    shown["unknown client"] = client.get("/oauth2/authorize?response_type=code&client_id=nobody&scope=openid")
    shown["logout confirmation"] = client.get("/oauth2/logout")
    assert location(code_step(client, code(ada_totp))) == "/signin"
    shown["signed in"] = client.get("/signin")
    consent, _ = consent_page(app, browser(app), consent_client, relying_party.redirect_uri, email="grace@example.com")
    shown["consent"] = consent.response
    signout = page(shown["signed in"])
    shown["signed out"] = client.post("/signout", data={"csrf_token": signout.csrf})
    # Three failed passwords from one address, then the fourth attempt is held back.
    prober = browser(app, "10.1.0.1")
    for _ in range(3):
        assert password_step(prober, "ada@example.com", "not the password").status_code == 401
    shown["too many"] = password_step(prober, "ada@example.com", "not the password")
    expected = {"email": 200, "password": 200, "mfa": 200, "wrong code": 401, "error": 400, "expired form": 400,
                "unknown client": 400, "logout confirmation": 200, "signed in": 200, "consent": 200,
                "signed out": 200, "too many": 429}
    assert {name: response.status_code for name, response in shown.items()} == expected
    for name, response in shown.items():
        try:
            assert_page_headers(response)
        except AssertionError as failure:
            raise AssertionError(f"the {name} page: {failure}") from None
    assert "Sign out?" in page(shown["logout confirmation"]).text
    assert "Too many attempts" in page(shown["too many"], 429).text
    assert int(shown["too many"].headers["Retry-After"]) > 0


def test_the_stylesheet_is_served(client):
    response = client.client.get("/assets/iam.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert response.get_data(as_text=True).strip()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_load_only_files_of_this_server(client):
    """No inline script or style for the CSP to allow: no <script> or <style> element, no
    style= or on*= attribute; the stylesheet is this server's."""
    shown = page(client.client.get("/signin"))
    assert "<script" not in shown.html.lower() and "<style" not in shown.html.lower()
    for tag, attrs in shown.elements:
        assert not any(name == "style" or name.startswith("on") for name in attrs), (tag, attrs)
    [sheet] = shown.find("link", rel="stylesheet")
    assert sheet["href"].startswith("/assets/")


# ------------------------------------------------------------------ 2. cookies

def test_the_browser_cookie_is_httponly_lax_and_not_secure_on_http(app, ada):
    client = browser(app)
    answer = password_step(client, "ada@example.com")
    assert location(answer) == "/signin"
    header = set_cookie(answer, "iam_browser")
    assert header, answer.headers
    attributes = cookie_attributes(header)
    assert attributes.get("httponly") is True and attributes.get("samesite") == "Lax" and attributes.get("path") == "/"
    assert "secure" not in attributes, header
    assert "domain" not in attributes, header  # this host only
    value = header.split(";", 1)[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits
    [session] = browser_sessions(app)
    assert session.browser_digest == digest(value)  # stored as its digest only
    assert session.account_id == ada.id and session.amr == ["pwd"] and session.revoked_at is None


def test_the_page_session_cookie_is_httponly_and_lax(app):
    response = browser(app).get("/signin")
    header = set_cookie(response, "iam_pages")
    assert header, response.headers
    attributes = cookie_attributes(header)
    assert attributes.get("httponly") is True and attributes.get("samesite") == "Lax", header
    assert "secure" not in attributes, header


def test_the_browser_cookie_is_secure_on_an_https_issuer(app, ada, https_issuer):
    client = browser(app)
    answer = password_step(client, "ada@example.com")
    assert location(answer) == "/signin"
    attributes = cookie_attributes(set_cookie(answer, "iam_browser"))
    assert attributes.get("secure") is True and attributes.get("httponly") is True
    assert attributes.get("samesite") == "Lax"
    # Signing out clears it with the same attributes.
    shown = page(client.get("/signin", base_url="https://localhost"))
    assert "You are signed in" in shown.text
    out = client.post("/signout", data={"csrf_token": shown.csrf}, base_url="https://localhost")
    cleared = set_cookie(out, "iam_browser")
    assert cleared and cookie_attributes(cleared).get("secure") is True


def test_the_page_session_cookie_is_secure_when_the_server_starts_on_an_https_issuer(make_app):
    https = make_app(IAM_ISSUER="https://iam.example.com")
    response = https.test_client().get("/signin", base_url="https://localhost")
    attributes = cookie_attributes(set_cookie(response, "iam_pages"))
    assert attributes.get("secure") is True and attributes.get("httponly") is True
    assert attributes.get("samesite") == "Lax"


def test_api_requests_set_no_cookie(app, factory, ada):
    client = browser(app)
    client.get("/signin")  # a page session in this browser, sent along with the API requests below
    assert client.get_cookie("iam_pages") is not None
    logged_in = ApiClient(client).post("/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    token = assert_jsonapi(logged_in, 200)["meta"]["token"]
    assert logged_in.headers.getlist("Set-Cookie") == []
    me = ApiClient(client, token).get("/accounts/me")
    assert_jsonapi(me, 200)
    assert me.headers.getlist("Set-Cookie") == []
    refused = ApiClient(client).post("/auth/login", {"email": "ada@example.com", "password": "wrong password"})
    error_of(refused, 401)
    assert refused.headers.getlist("Set-Cookie") == []
    fresh = ApiClient(browser(app), factory.token(ada)).get("/accounts/me")
    assert_jsonapi(fresh, 200)
    assert fresh.headers.getlist("Set-Cookie") == []
    assert "Set-Cookie" not in browser(app).get("/.well-known/openid-configuration").headers


# ------------------------------------------------------------------ 3. CSRF

def assert_expired(response):
    shown = page(response, 400)
    assert shown.one("h1")["id"] == "page-title" and EXPIRED in shown.text and "reload the page" in shown.alert()
    assert_page_headers(response)
    assert set_cookie(response, "iam_browser") is None


def forms_without_a_good_token(data, shown):
    """The form's data without csrf_token, with a made-up one, and with this browser's token
    from another form's session (a token is this browser's only)."""
    yield {k: v for k, v in data.items() if k != "csrf_token"}
    yield {**data, "csrf_token": "IjAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OSI.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb"}
    yield {**data, "csrf_token": shown.csrf[:-2] + ("AA" if not shown.csrf.endswith("AA") else "BB")}


def test_the_sign_in_forms_need_their_csrf_token(app, ada, ada_totp):
    client = browser(app)
    other = browser(app)
    foreign = page(other.get("/signin")).csrf  # a token of another browser's session
    shown = page(client.get("/signin"))
    for data in [*forms_without_a_good_token({"csrf_token": shown.csrf, "email": "ada@example.com"}, shown),
                 {"csrf_token": foreign, "email": "ada@example.com"}]:
        assert_expired(client.post("/signin", data=data))
    form = password_page(client, "ada@example.com")
    good = {"csrf_token": form.csrf, "email": "ada@example.com", "password": PASSWORD, "next": ""}
    for data in [*forms_without_a_good_token(good, form), {**good, "csrf_token": foreign}]:
        assert_expired(client.post("/signin/password", data=data))
    assert page_session(app, client).get("mfa_token") is None  # the password was never checked
    # The second factor's form.
    assert location(client.post("/signin/password", data=good)) == "/signin/mfa"
    mfa = page(client.get("/signin/mfa"))
    good_code = {"csrf_token": mfa.csrf, "code": code(ada_totp), "next": ""}
    for data in [*forms_without_a_good_token(good_code, mfa), {**good_code, "csrf_token": foreign}]:
        assert_expired(client.post("/signin/mfa", data=data))
    assert client.get_cookie("iam_browser") is None and browser_sessions(app) == []
    with app.app_context():
        assert db.session.get(Account, ada.id).failed_login_count == 1  # the password's own attempt only
    assert "login" not in actions(app) and "mfa_used" not in actions(app) and "mfa_failed" not in actions(app)
    # The right token still works afterwards: nothing above used the challenge up.
    assert location(client.post("/signin/mfa", data=good_code)) == "/signin"
    assert client.get_cookie("iam_browser") is not None


def test_a_passkeys_options_need_the_csrf_token(app, ada, ada_totp):
    """POST /signin/mfa/passkey (what static/passkey.js fetches) is a form of the pages too."""
    client = browser(app)
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    shown = page(client.get("/signin/mfa"))
    for data in forms_without_a_good_token({"csrf_token": shown.csrf, "factor_id": "1"}, shown):
        refused = client.post("/signin/mfa/passkey", data=data)
        assert refused.status_code == 400 and "options" not in (refused.get_json() or {})
    # With the token, an id that is no passkey of the sign-in gets no options either.
    other = client.post("/signin/mfa/passkey", data={"csrf_token": shown.csrf, "factor_id": "999999"})
    assert other.status_code == 400 and "options" not in (other.get_json() or {})


def test_the_sign_out_form_needs_its_csrf_token(app, ada):
    client = signed_in(app)
    shown = page(client.get("/signin"))
    assert "You are signed in" in shown.text
    for data in [*forms_without_a_good_token({"csrf_token": shown.csrf}, shown),
                 {"csrf_token": page(browser(app).get("/signin")).csrf}]:
        response = client.post("/signout", data=data)
        assert_expired(response)
    [session] = browser_sessions(app)
    assert session.revoked_at is None and "logout" not in actions(app)
    assert "You are signed in" in page(client.get("/signin")).text


def test_the_consent_form_needs_its_csrf_token(app, ada, consent_client, relying_party):
    client = browser(app)
    shown, action = consent_page(app, client, consent_client, relying_party.redirect_uri)
    for data in [*forms_without_a_good_token({"csrf_token": shown.csrf, "decision": "allow"}, shown),
                 {"csrf_token": page(browser(app).get("/signin")).csrf, "decision": "allow"}]:
        answer = client.post(action, data=data)
        assert_expired(answer)
        assert "Location" not in answer.headers
    assert rows(app, OAuthConsent) == [] and "consent_given" not in actions(app)
    assert "token_issued" not in actions(app) and relying_party.arrivals() == []
    # With the token, the code goes to the application.
    allowed = client.post(action, data={"csrf_token": shown.csrf, "decision": "allow"})
    back = location(allowed, 302)
    assert back.startswith(relying_party.redirect_uri + "?") and "code=" in back
    assert [row.scopes for row in rows(app, OAuthConsent)] == [["email", "openid"]]


# ------------------------------------------------------------------ 4. next

BAD_NEXT = ["https://evil.example/x", "//evil.example", "//evil.example/oauth2/authorize?x=1",
            "/api/v3/iam/accounts", "/oauth2/authorize\\@evil", "/oauth2/authorize?x=1\\@evil.example",
            "/\\evil.example/oauth2/authorize?x=1", "https://evil.example/oauth2/authorize?client_id=x",
            "/oauth2/authorize", "/oauth2/authorizeX?x=1", "/oauth2/authorize?x=1\r\nLocation: https://evil.example",
            "/oauth2/authorize?x= 1", "javascript:alert(1)//oauth2/authorize?", "/signout", "/oauth2/logout?x=1"]


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_a_next_that_is_not_the_authorization_endpoint_is_dropped(app, ada, bad):
    client = browser(app)
    # From the link: the form does not carry it on.
    shown = page(client.get("/signin", query_string={"next": bad}))
    assert shown.value("next") == ""
    # Put into the forms by hand: the redirect after signing in still goes to /signin.
    form = page(client.post("/signin", data={"csrf_token": shown.csrf, "email": "ada@example.com", "next": bad}))
    assert form.value("next") == ""
    answer = client.post("/signin/password", data={"csrf_token": form.csrf, "email": "ada@example.com",
                                                   "password": PASSWORD, "next": bad})
    assert location(answer) == "/signin"
    assert client.get_cookie("iam_browser") is not None
    # Signed in, a GET with it shows the page instead of going there.
    again = client.get("/signin", query_string={"next": bad})
    assert again.status_code == 200 and "You are signed in" in page(again).text


def test_a_next_of_the_authorization_endpoint_is_followed(app, ada):
    good = "/oauth2/authorize?response_type=code&client_id=abc&scope=openid+email&state=x%2Fy"
    client = browser(app)
    shown = page(client.get("/signin", query_string={"next": good}))
    assert shown.value("next") == good
    form = password_page(client, "ada@example.com", next_url=good)
    assert form.value("next") == good
    answer = client.post("/signin/password", data={"csrf_token": form.csrf, "email": "ada@example.com",
                                                   "password": PASSWORD, "next": form.value("next")})
    assert location(answer) == good
    # Signed in already, the sign-in page sends such a next straight on.
    assert location(client.get("/signin", query_string={"next": good})) == good


def test_a_next_survives_a_second_factor(app, ada, ada_totp):
    good = "/oauth2/authorize?response_type=code&client_id=abc&scope=openid"
    client = browser(app)
    sent = location(password_step(client, "ada@example.com", next_url=good))
    assert urlsplit(sent).path == "/signin/mfa" and parse_qs(urlsplit(sent).query) == {"next": [good]}
    assert location(code_step(client, code(ada_totp), next_url=good)) == good


def test_a_next_is_dropped_at_the_second_factor_too(app, ada, ada_totp):
    client = browser(app)
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    mfa = page(client.get("/signin/mfa", query_string={"next": "https://evil.example/x"}))
    assert mfa.value("next") == ""
    answer = client.post("/signin/mfa", data={"csrf_token": mfa.csrf, "code": code(ada_totp),
                                              "next": "//evil.example/oauth2/authorize?x=1"})
    assert location(answer) == "/signin"


# ------------------------------------------------------------------ 5. one answer to every refused password

def normalized(response, email):
    shown = page(response, 401)
    return shown.html.replace(shown.csrf, "CSRF").replace(email, "EMAIL")


def test_every_refused_password_answers_the_same_page(app, factory, ada):
    org = factory.organization(slug="sso-org")
    with app.app_context():
        db.session.add(IdentityProvider(organization_id=org.id, name="Corp", issuer="https://idp.corp.example",
                                        client_id="iam", email_domains=["corp.example"],
                                        domains=[IdentityProviderDomain(domain="corp.example")], enforced=True,
                                        enabled=True))
        db.session.commit()
    disabled = factory.account(email="off@example.com", enabled=False)
    expired = factory.account(email="old@example.com", expires_at=utcnow() - timedelta(days=1))
    enforced = factory.account(email="bob@elsewhere.example", organization_id=org.id)
    sso_only = factory.account(email="sso@example.com", auth_type="sso", password=False)
    cases = {"wrong password": ("ada@example.com", "not the password"),
             "unknown email": ("nobody@example.com", PASSWORD),
             "disabled account": ("off@example.com", PASSWORD),
             "expired account": ("old@example.com", PASSWORD),
             "SSO enforced by the organization": ("bob@elsewhere.example", PASSWORD),
             "an sso account": ("sso@example.com", PASSWORD)}
    answers = {}
    for number, (name, (email, password)) in enumerate(cases.items()):
        client = browser(app)  # one address: its count of failures shows in no header
        response = password_step(client, email, password)
        shown = page(response, 401)
        assert shown.alert() == INVALID_CREDENTIALS, (name, shown.alert())
        assert shown.value("email") == email  # the same form again
        assert shown.find("input", name="password")[0].get("value") == ""  # the password is not sent back
        assert client.get_cookie("iam_browser") is None
        headers = {k: v for k, v in response.headers.items()
                   if k not in ("Content-Length", "Set-Cookie", "X-Request-ID")}
        answers[name] = (response.status_code, normalized(response, email), headers,
                         sorted(c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie")))
    first = answers["wrong password"]
    for name, answer in answers.items():
        assert answer == first, name
    assert browser_sessions(app) == [] and rows(app, AccountSession) == []
    failed = rows(app, AuditEvent, AuditEvent.action == "login_failed")
    assert sorted(int(e.resource_id) for e in failed) == sorted([ada.id, disabled.id, expired.id, enforced.id,
                                                                 sso_only.id])
    assert "login" not in actions(app)


# ------------------------------------------------------------------ 6. the throttle, shared with the API

def test_the_pages_and_the_api_share_one_failure_count_per_address(app, ada, three_failures_a_minute):
    # Correct sign-ins are never counted: more of them than the limit, on the page and at the API.
    for _ in range(3):
        signed_in(app)
    assert_jsonapi(api_login(app, "ada@example.com"), 200)
    assert_jsonapi(api_login(app, "ada@example.com"), 200)
    # Two failures at the API and one on the page use the three.
    for _ in range(2):
        error_of(api_login(app, "ada@example.com", "not the password"), 401)
    client = browser(app)
    assert page(password_step(client, "nobody@example.com", "whatever password"), 401).alert() == INVALID_CREDENTIALS
    limited = password_step(client, "ada@example.com", "not the password")
    shown = page(limited, 429)
    assert "Too many attempts" in shown.text and "Too many" in shown.alert()
    assert int(limited.headers["Retry-After"]) > 0
    assert_page_headers(limited)
    # The API's login is held back too, with the right password.
    held = api_login(app, "ada@example.com")
    error_of(held, 429)
    assert int(held.headers["Retry-After"]) > 0
    # And so is the page, with the right password: the address waits.
    assert page(password_step(browser(app), "ada@example.com"), 429)
    assert client.get_cookie("iam_browser") is None
    # Another address is not held back.
    assert location(password_step(browser(app, "10.2.0.2"), "ada@example.com")) == "/signin"


def test_only_the_pages_429_carries_retry_after(app, ada, three_failures_a_minute):
    """The limited pages' other answers carry no rate-limit header; the 429 page a Retry-After in seconds."""
    def limit_headers(response):
        return [name for name in response.headers.keys()
                if name.lower().startswith("x-ratelimit") or name.lower() == "retry-after"]
    signed_in_answer = password_step(browser(app), "ada@example.com")
    client = browser(app)
    answers = [signed_in_answer] + [password_step(client, "ada@example.com", "not the password") for _ in range(3)]
    assert [r.status_code for r in answers] == [303, 401, 401, 401]
    assert [limit_headers(r) for r in answers] == [[]] * 4
    limited = password_step(client, "ada@example.com")
    assert "Too many attempts" in page(limited, 429).text
    assert limit_headers(limited) == ["Retry-After"]
    assert re.fullmatch(r"[1-9][0-9]*", limited.headers["Retry-After"]) and int(limited.headers["Retry-After"]) <= 60


def test_page_failures_hold_the_api_back(app, ada, three_failures_a_minute):
    client = browser(app)
    for _ in range(3):
        assert password_step(client, "ada@example.com", "not the password").status_code == 401
    error_of(api_login(app, "ada@example.com"), 429)


def test_wrong_codes_on_the_page_and_at_the_api_share_one_count(app, ada, ada_totp, three_failures_a_minute):
    app.config["IAM_LOGIN_MAX_FAILURES"] = 50  # the account's lock is another test's
    try:
        mfa_token = assert_jsonapi(api_login(app, "ada@example.com"), 200)["meta"]["mfa_token"]
        for _ in range(2):
            error_of(second_step(app, mfa_token, code=wrong_code(ada_totp)), 401)
        client = browser(app)
        assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
        refused = page(code_step(client, wrong_code(ada_totp)), 401)
        limited = client.post("/signin/mfa", data={"csrf_token": refused.csrf, "code": code(ada_totp)})
        assert "Too many attempts" in page(limited, 429).text and int(limited.headers["Retry-After"]) > 0
        assert page(client.get("/signin/mfa"), 429)  # the page itself waits too
        error_of(second_step(app, mfa_token, code=code(ada_totp)), 429)
        assert client.get_cookie("iam_browser") is None
    finally:
        app.config["IAM_LOGIN_MAX_FAILURES"] = 5


# ------------------------------------------------------------------ 7. the lock, shared with the API

def test_the_pages_and_the_api_share_the_account_lock(app, ada, lock_after_three):
    for _ in range(2):
        error_of(api_login(app, "ada@example.com", "not the password"), 401)
    wrong = password_step(browser(app), "ada@example.com", "not the password")
    assert page(wrong, 401).alert() == INVALID_CREDENTIALS
    with app.app_context():
        locked = db.session.get(Account, ada.id)
        assert locked.failed_login_count == 3 and locked.locked_until is not None
    assert "lock" in actions(app)
    # The right password now answers the same page, and the API refuses it too.
    client = browser(app)
    right = password_step(client, "ada@example.com")
    assert normalized(right, "ada@example.com") == normalized(wrong, "ada@example.com")
    assert client.get_cookie("iam_browser") is None and browser_sessions(app) == []
    assert error_of(api_login(app, "ada@example.com"), 401)["code"] == "invalid_credentials"
    assert "login" not in actions(app)


def test_api_failures_lock_the_page_out_until_the_lock_ends(app, ada, lock_after_three):
    for _ in range(3):
        error_of(api_login(app, "ada@example.com", "not the password"), 401)
    assert page(password_step(browser(app), "ada@example.com"), 401).alert() == INVALID_CREDENTIALS
    with app.app_context():  # the lock is over
        db.session.execute(update(Account).where(Account.id == ada.id).values(locked_until=utcnow()))
        db.session.commit()
    assert location(password_step(browser(app), "ada@example.com")) == "/signin"


# ------------------------------------------------------------------ 8. the second factor

def test_the_second_factor_page(app, ada, ada_totp):
    client = browser(app)
    bodies = []
    after_password = password_step(client, "ada@example.com")
    assert location(after_password) == "/signin/mfa"
    assert client.get_cookie("iam_browser") is None and set_cookie(after_password, "iam_browser") is None
    mfa_token = page_session(app, client)["mfa_token"]
    assert len(mfa_token) >= 43
    shown = page(client.get("/signin/mfa"))
    bodies.append(shown.html)
    assert "Confirm it is you" in shown.text
    assert shown.find("input", name="mfa_token") == [] and [i["name"] for i in shown.visible_inputs()] == ["code"]
    hidden = [attrs for attrs in shown.find("input", type="hidden")]
    assert sorted(attrs["name"] for attrs in hidden) == ["csrf_token", "next"]
    # A wrong code: the page again, 401, with the alert.
    refused = code_step(client, wrong_code(ada_totp))
    again = page(refused, 401)
    bodies.append(again.html)
    assert again.alert() == "That code is not accepted."
    assert client.get_cookie("iam_browser") is None
    assert "mfa_failed" in actions(app)
    # The right one signs the browser in.
    done = code_step(client, code(ada_totp))
    assert location(done) == "/signin" and set_cookie(done, "iam_browser")
    for response in (after_password, refused, done):
        assert mfa_token not in response.get_data(as_text=True)
        assert mfa_token not in str(response.headers.get("Location", ""))
    for body in bodies:
        assert mfa_token not in body
    assert "mfa_token" not in page_session(app, client)
    [session] = browser_sessions(app)
    assert session.account_id == ada.id and session.amr == ["pwd", "otp"] and session.mfa_at is not None
    # One sign-in, one 'login' in the audit trail (as POST /auth/mfa records), after the factor's use.
    logins = rows(app, AuditEvent, AuditEvent.action == "login")
    assert [(e.resource_type, e.resource_id) for e in logins] == [("account_sessions", str(session.id))], [
        (e.action, e.resource_id, e.changes) for e in rows(app, AuditEvent)]
    assert actions(app)[-2:] == ["mfa_used", "login"]
    with app.app_context():
        assert db.session.get(Account, ada.id).failed_login_count == 0
    # The challenge is used: the page sends the browser back to the start.
    assert location(client.get("/signin/mfa")) == "/signin"


def test_a_recovery_code_signs_in_once(app, factory, ada, ada_totp):
    codes = assert_jsonapi(ApiClient(app.test_client(), factory.token(ada)).post("/mfa_factors", {"data": {
        "type": "mfa_factors", "attributes": {"kind": "recovery_codes"}}}), 201)["meta"]["codes"]
    client = browser(app)
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    assert location(code_step(client, codes[0])) == "/signin"
    assert client.get_cookie("iam_browser") is not None
    [session] = browser_sessions(app)
    assert session.amr == ["pwd", "otp"]
    # Used once.
    other = browser(app)
    assert location(password_step(other, "ada@example.com")) == "/signin/mfa"
    assert page(code_step(other, codes[0]), 401).alert() == "That code is not accepted."
    assert location(code_step(other, codes[1].replace("-", "").upper())) == "/signin"


def test_the_challenge_dies_after_five_wrong_codes(app, ada, ada_totp):
    app.config["IAM_LOGIN_MAX_FAILURES"] = 50  # the account's lock is another test's
    try:
        client = browser(app)
        assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
        for _ in range(5):
            assert page(code_step(client, wrong_code(ada_totp)), 401).alert() == "That code is not accepted."
        # Even the right code: the challenge is dead, and the browser starts again.
        assert location(code_step(client, code(ada_totp))) == "/signin"
        assert "mfa_token" not in page_session(app, client)
        assert location(client.get("/signin/mfa")) == "/signin"
        assert client.get_cookie("iam_browser") is None and browser_sessions(app) == []
        assert "email" in [i["name"] for i in page(client.get("/signin")).visible_inputs()]
    finally:
        app.config["IAM_LOGIN_MAX_FAILURES"] = 5


def test_the_second_factor_page_without_a_password_first(app):
    client = browser(app)
    assert location(client.get("/signin/mfa")) == "/signin"
    csrf = page(client.get("/signin")).csrf
    assert location(client.post("/signin/mfa", data={"csrf_token": csrf, "code": "123456"})) == "/signin"
    assert "mfa_failed" not in actions(app)


def test_wrong_codes_on_the_page_lock_the_account(app, ada, ada_totp, lock_after_three):
    client = browser(app)
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"  # attempt 1 (until proven)
    for _ in range(2):
        assert code_step(client, wrong_code(ada_totp)).status_code == 401  # 2, 3: locked
    assert "lock" in actions(app)
    assert page(code_step(client, code(ada_totp)), 401).alert() == "That code is not accepted."
    assert client.get_cookie("iam_browser") is None
    error_of(api_login(app, "ada@example.com"), 401)


# ------------------------------------------------------------------ 9. enrolment required by a policy

def test_a_policy_without_a_factor_asks_for_enrolment(app, factory):
    org = factory.organization(slug="strict", policies={"mfa_required": True})
    account = factory.account(email="eve@strict.example", organization_id=org.id)
    client = browser(app)
    answer = password_step(client, "eve@strict.example")
    shown = page(answer, 403)
    assert "Set up a second factor first" in shown.text and "second factor" in shown.alert()
    assert set_cookie(answer, "iam_browser") is None and client.get_cookie("iam_browser") is None
    assert rows(app, AccountSession) == []  # no browser session, no enrolment session either
    assert "login" not in actions(app)
    assert_page_headers(answer)
    # The API's login gives the session that may only enrol.
    body = assert_jsonapi(api_login(app, "eve@strict.example"), 200)
    assert body["meta"]["mfa_enrollment_required"] is True
    [session] = rows(app, AccountSession)
    assert session.account_id == account.id and session.enrollment_only and session.browser_digest is None


def test_a_policy_on_the_unit_asks_for_enrolment_too(app, factory):
    org = factory.organization(slug="units")
    unit = factory.unit(org, name="finance")
    with app.app_context():
        db.session.execute(update(OrganizationalUnit).where(OrganizationalUnit.id == unit.id)
                           .values(policies={"mfa_required": True}))
        db.session.execute(update(Organization).where(Organization.id == org.id).values(policies={}))
        db.session.commit()
    person = factory.person(org, first_name="Fin", last_name="Ance", organizational_unit_id=unit.id)
    factory.account(email="fin@units.example", organization_id=org.id, person_id=person.id)
    assert "Set up a second factor first" in page(password_step(browser(app), "fin@units.example"), 403).text
    assert browser_sessions(app) == []


# ------------------------------------------------------------------ 10. signed in, signing out

def test_signed_in_then_signed_out(app, ada):
    client = signed_in(app)
    [session] = browser_sessions(app)
    shown = page(client.get("/signin"))
    assert "You are signed in" in shown.text and "ada@example.com" in shown.text
    form = shown.one("form", method="post")
    assert form["action"] == "/signout"
    assert shown.find("input", name="email") == []
    out = client.post("/signout", data={"csrf_token": shown.csrf})
    assert "You are signed out" in page(out).text
    cleared = set_cookie(out, "iam_browser")
    assert cleared and cleared.startswith("iam_browser=;"), cleared
    attributes = cookie_attributes(cleared)
    assert attributes.get("max-age") == "0" or "1970" in str(attributes.get("expires")), cleared
    assert attributes.get("httponly") is True and attributes.get("path") == "/"
    assert client.get_cookie("iam_browser") is None
    [ended] = browser_sessions(app)
    assert ended.id == session.id and ended.revoked_at is not None
    assert actions(app)[-1] == "logout"
    assert "email" in [i["name"] for i in page(client.get("/signin")).visible_inputs()]


def test_an_ended_session_or_a_disabled_account_is_not_signed_in(app, ada):
    """The browser's session ends elsewhere, or its account is disabled: the cookie no longer
    signs the browser in."""
    ended, disabled = signed_in(app), signed_in(app)
    first, _ = browser_sessions(app)
    with app.app_context():
        db.session.execute(update(AccountSession).where(AccountSession.id == first.id).values(revoked_at=utcnow()))
        db.session.commit()
    assert "You are signed in" not in page(ended.get("/signin")).text
    assert "You are signed in" in page(disabled.get("/signin")).text
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == ada.id).values(enabled=False))
        db.session.commit()
    assert "You are signed in" not in page(disabled.get("/signin")).text


def test_signing_out_without_a_session_is_harmless(app):
    client = browser(app)
    shown = page(client.get("/signin"))
    out = client.post("/signout", data={"csrf_token": shown.csrf})
    assert "You are signed out" in page(out).text
    assert "logout" not in actions(app)


# ------------------------------------------------------------------ 11. accessibility

def assert_accessible(shown):
    assert re.search(r'<html lang="en">', shown.html)
    [main] = shown.find("main")
    [h1] = shown.find("h1")
    assert h1.get("id") and main.get("aria-labelledby") == h1["id"]
    assert shown.one("title") is not None
    visible = shown.visible_inputs()
    assert visible, shown.html
    labels = {attrs.get("for") for attrs in shown.find("label")}
    for attrs in visible:
        assert attrs.get("id") and attrs["id"] in labels, attrs
        assert len(shown.by_id(attrs["id"])) == 1, attrs  # ids are unique
    assert "autofocus" in visible[0], visible[0]
    assert sum("autofocus" in attrs for _, attrs in shown.elements) == 1
    for _, attrs in shown.elements:
        if attrs.get("aria-describedby"):
            for target in attrs["aria-describedby"].split():
                assert shown.by_id(target), (attrs, target)


def assert_field_error(shown, name):
    [field] = shown.find("input", name=name)
    assert field.get("aria-invalid") == "true", field
    described = field.get("aria-describedby")
    assert described, field
    [(tag, target)] = shown.by_id(described)
    assert target.get("role") == "alert" or tag in ("p", "div", "span")
    return field


def test_the_forms_are_accessible(app, ada, ada_totp):
    client = browser(app)
    email = page(client.get("/signin"))
    assert_accessible(email)
    assert email.one("input", name="email")["type"] == "email"
    assert email.one("input", name="email")["autocomplete"] == "username"
    password = password_page(client, "ada@example.com")
    assert_accessible(password)
    assert password.one("input", name="password")["autocomplete"] == "current-password"
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    mfa = page(client.get("/signin/mfa"))
    assert_accessible(mfa)
    assert mfa.one("input", name="code")["autocomplete"] == "one-time-code"
    for shown in (email, password, mfa):
        assert "aria-invalid" not in shown.html


def test_an_empty_field_is_marked_invalid_and_described(app, ada, ada_totp):
    client = browser(app)
    shown = page(client.get("/signin"))
    empty_email = page(client.post("/signin", data={"csrf_token": shown.csrf, "email": ""}), 422)
    assert_accessible(empty_email)
    assert_field_error(empty_email, "email")
    assert "Enter your email address." in empty_email.text
    form = password_page(client, "ada@example.com")
    empty_password = page(client.post("/signin/password", data={"csrf_token": form.csrf, "email": "ada@example.com",
                                                                  "password": ""}), 422)
    assert_accessible(empty_password)
    assert_field_error(empty_password, "password")
    assert "Enter your password." in empty_password.text
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    mfa = page(client.get("/signin/mfa"))
    empty_code = page(client.post("/signin/mfa", data={"csrf_token": mfa.csrf, "code": ""}), 422)
    assert_accessible(empty_code)
    assert_field_error(empty_code, "code")
    assert "Enter the code." in empty_code.text


def test_a_refused_password_or_code_marks_the_field_invalid(app, ada, ada_totp):
    """The 401 answers put their message in a role=alert element; the field it is about says it
    is invalid and points at that message (aria-invalid, aria-describedby)."""
    client = browser(app)
    refused = page(password_step(client, "ada@example.com", "not the password"), 401)
    assert_accessible(refused)
    field = assert_field_error(refused, "password")
    assert refused.by_id(field["aria-describedby"])[0][1].get("role") == "alert"
    assert location(password_step(client, "ada@example.com")) == "/signin/mfa"
    wrong = page(code_step(client, wrong_code(ada_totp)), 401)
    assert_accessible(wrong)
    field = assert_field_error(wrong, "code")
    assert wrong.by_id(field["aria-describedby"])[0][1].get("role") == "alert"


def test_error_pages_are_accessible_too(app):
    shown = page(browser(app).get("/signin/sso"), 400)
    assert re.search(r'<html lang="en">', shown.html)
    [main], [h1] = shown.find("main"), shown.find("h1")
    assert main.get("aria-labelledby") == h1.get("id") and h1.get("id")
    assert shown.alert()
