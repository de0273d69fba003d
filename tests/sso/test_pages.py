"""Single sign-on through the sign-in pages (iam/web/), with the real OpenID provider of the suite
(oidc-provider-mock, tests/sso/conftest.py): an email of a domain that an organization's enabled
identity provider holds goes to that provider (through /api/v3/iam/auth/sso/start), comes back
to /signin/sso with an sso_code, and the browser is signed in (amr ["sso"]) and sent on to `next`;
a reused code is refused; an mfa_required policy the provider did not satisfy asks for the second
factor on /signin/mfa (contract sections 8, 9 and 10)."""
from urllib.parse import parse_qs, quote, urlsplit


from iam.models import Account, AccountSession, IdentityProvider
from tests.helpers import ApiClient, error_of
from tests.mfa.helpers import code, enrol_totp
from tests.sso.flows import EXCHANGE, START, authorize, set_user
from tests.web.test_pages import (
    actions,
    assert_page_headers,
    browser,
    browser_sessions,
    code_step,
    email_step,
    location,
    page,
    page_session,
    rows,
    set_cookie,
)

NEXT = "/oauth2/authorize?response_type=code&client_id=timesheets&scope=openid+email&state=s%2F1"


def path_of(url):
    """The path and query of an absolute URL of this server (the test client's requests are
    made to its own host, whatever IAM_ISSUER names)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def query_of(url):
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def to_provider(app, client, email, next_url=None):
    """The email form posted: (the start URL it redirects to, the provider's authorization URL)."""
    start = location(email_step(client, email, next_url))
    issuer = app.config["IAM_ISSUER"]
    assert start.startswith(f"{issuer}{START}?"), start
    answer = client.get(path_of(start))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return start, answer.headers["Location"]


def back_from_provider(app, client, email, sub, next_url=None):
    """The whole round trip to the provider: the /signin/sso URL the callback sends the browser to."""
    _, at_provider = to_provider(app, client, email, next_url)
    returned = client.get(authorize(at_provider, sub))
    back = location(returned, 302)
    issuer = app.config["IAM_ISSUER"]
    assert back.startswith(f"{issuer}/signin/sso?"), back
    return path_of(back)


def test_an_email_of_the_providers_domain_signs_in_through_it(app, make_provider, oidc_provider, org):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-pages-1", email="ada@acme.example")
    client = browser(app)
    start, at_provider = to_provider(app, client, "ada@acme.example", NEXT)
    issuer = app.config["IAM_ISSUER"]
    assert query_of(start) == {"identity_provider_id": str(provider_id), "login_hint": "ada@acme.example",
                               "return_to": f"{issuer}/signin/sso?next={quote(NEXT, safe='')}"}
    assert at_provider.startswith(oidc_provider[0]) and query_of(at_provider)["login_hint"] == "ada@acme.example"
    returned = client.get(authorize(at_provider, "ada-pages-1"))
    back = location(returned, 302)
    assert back.startswith(f"{issuer}/signin/sso?")
    assert query_of(back)["next"] == NEXT and query_of(back)["sso_code"]
    assert set_cookie(returned, "iam_browser") is None  # the API's callback sets no cookie
    done = client.get(path_of(back))
    assert location(done) == NEXT
    assert set_cookie(done, "iam_browser") and client.get_cookie("iam_browser") is not None
    [session] = browser_sessions(app)
    [account] = rows(app, Account)
    assert session.account_id == account.id and account.email == "ada@acme.example"
    assert session.amr == ["sso"] and session.revoked_at is None and not session.enrollment_only
    assert account.organization_id == org.id and account.auth_type == "sso"
    assert "sso_jit" in actions(app) and "sso_login" in actions(app)
    # Signed in: the sign-in page says so, and sends a next straight on.
    assert "You are signed in" in page(client.get("/signin")).text
    assert location(client.get("/signin", query_string={"next": NEXT})) == NEXT


def test_an_existing_account_is_linked_and_signed_in(app, make_provider, oidc_provider, org, factory):
    account = factory.account(email="grace@acme.example", organization_id=org.id)
    make_provider()
    set_user(oidc_provider[0], "grace-pages", email="grace@acme.example")
    client = browser(app)
    done = client.get(back_from_provider(app, client, "grace@acme.example", "grace-pages"))
    assert location(done) == "/signin"  # no next: the sign-in page
    [session] = browser_sessions(app)
    assert session.account_id == account.id and session.amr == ["sso"]
    assert "sso_link" in actions(app)


def test_an_enforced_provider_sends_its_accounts_there_and_refuses_their_password(app, make_provider, oidc_provider,
                                                                                   org, factory):
    factory.account(email="bob@acme.example", organization_id=org.id)
    make_provider(enforced=True)
    client = browser(app)
    start = location(email_step(client, "bob@acme.example"))
    assert urlsplit(start).path == START
    # The password form posted by hand is refused like any wrong password.
    csrf = page(client.get("/signin")).csrf
    refused = client.post("/signin/password", data={"csrf_token": csrf, "email": "bob@acme.example",
                                                    "password": "correct horse battery staple"})
    assert page(refused, 401).alert().startswith("The email or password is not right")
    assert browser_sessions(app) == []


def test_a_disabled_provider_leaves_the_password(app, make_provider, oidc_provider):
    make_provider(enabled=False)
    shown = page(email_step(browser(app), "ada@acme.example"))
    assert shown.one("input", name="password")["type"] == "password"


def test_a_next_that_is_not_the_authorization_endpoint_never_reaches_return_to(app, make_provider, oidc_provider):
    make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-pages-2", email="ada2@acme.example")
    client = browser(app)
    csrf = page(client.get("/signin")).csrf
    start = location(client.post("/signin", data={"csrf_token": csrf, "email": "ada2@acme.example",
                                                  "next": "https://evil.example/x"}))
    assert query_of(start)["return_to"] == f"{app.config['IAM_ISSUER']}/signin/sso"
    # A next added to the way back by hand is dropped too.
    back = back_from_provider(app, client, "ada2@acme.example", "ada-pages-2")
    assert location(client.get(back + "&next=%2F%2Fevil.example%2Foauth2%2Fauthorize%3Fx%3D1")) == "/signin"


def test_a_reused_sso_code_is_refused_and_ends_the_session_it_opened(app, make_provider, oidc_provider):
    make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-pages-3", email="ada3@acme.example")
    client = browser(app)
    back = back_from_provider(app, client, "ada3@acme.example", "ada-pages-3", NEXT)
    assert location(client.get(back)) == NEXT
    [session] = browser_sessions(app)
    # The same link again, in another browser (someone holds a copy of it): refused, with a page.
    thief = browser(app)
    refused = thief.get(back)
    shown = page(refused, 401)
    assert "Sign-in did not complete" in shown.text and "used already" in shown.alert()
    assert_page_headers(refused)
    assert thief.get_cookie("iam_browser") is None and set_cookie(refused, "iam_browser") is None
    # A copied code means the session it opened is not the person's alone: it ends.
    [ended] = browser_sessions(app)
    assert ended.id == session.id and ended.revoked_at is not None
    assert "token_reuse" in actions(app)
    assert "You are signed in" not in page(client.get("/signin")).text


def test_a_made_up_or_missing_sso_code(app, make_provider, oidc_provider):
    client = browser(app)
    unknown = client.get("/signin/sso", query_string={"sso_code": "x" * 43, "next": NEXT})
    assert "Sign-in did not complete" in page(unknown, 401).text
    missing = client.get("/signin/sso", query_string={"next": NEXT})
    assert "Sign-in did not complete" in page(missing, 400).text
    assert page(client.get("/signin/sso", query_string={"sso_code": "x" * 300}), 400)
    assert client.get_cookie("iam_browser") is None and browser_sessions(app) == []


def test_wrong_sso_codes_on_the_page_count_with_the_apis_sso_failures(app, make_provider, oidc_provider,
                                                                       three_failures_a_minute):
    client = browser(app, "10.4.0.1")
    assert ApiClient(browser(app, "10.4.0.1")).post(EXCHANGE, {"code": "guess"}).status_code == 401
    for _ in range(2):
        assert client.get("/signin/sso", query_string={"sso_code": "guess"}).status_code == 401
    limited = client.get("/signin/sso", query_string={"sso_code": "guess"})
    shown = page(limited, 429)
    assert "Too many attempts" in shown.text and int(limited.headers["Retry-After"]) > 0
    assert_page_headers(limited)
    error_of(ApiClient(browser(app, "10.4.0.1")).post(EXCHANGE, {"code": "guess"}), 429)
    # Another address is not held back.
    assert browser(app, "10.4.0.2").get("/signin/sso", query_string={"sso_code": "guess"}).status_code == 401


def test_the_policy_asks_the_second_factor_the_provider_did_not_report(app, factory, make_provider, oidc_provider,
                                                                       org, policy):
    account = factory.account(email="ada@acme.example", organization_id=org.id)
    _, secret = enrol_totp(ApiClient(app.test_client(), factory.token(account)))
    make_provider()
    set_user(oidc_provider[0], "ada-pages-mfa", email="ada@acme.example")
    client = browser(app)
    back = back_from_provider(app, client, "ada@acme.example", "ada-pages-mfa", NEXT)
    to_mfa = client.get(back)
    sent = location(to_mfa)
    assert urlsplit(sent).path == "/signin/mfa" and query_of(sent) == {"next": NEXT}
    assert client.get_cookie("iam_browser") is None and set_cookie(to_mfa, "iam_browser") is None
    mfa_token = page_session(app, client)["mfa_token"]
    shown = page(client.get(path_of(sent)))
    assert "Confirm it is you" in shown.text and mfa_token not in shown.html and mfa_token not in sent
    assert shown.find("input", name="mfa_token") == []
    # A wrong code first, then the right one.
    wrong = "000000" if code(secret) != "000000" and code(secret, 1) != "000000" else "111111"
    assert page(code_step(client, wrong, NEXT), 401).alert() == "That code is not accepted."
    done = code_step(client, code(secret), NEXT)
    assert location(done) == NEXT and set_cookie(done, "iam_browser")
    sessions = browser_sessions(app)
    assert [(s.account_id, s.amr) for s in sessions] == [(account.id, ["sso", "otp"])]
    assert sessions[0].mfa_at is not None
    assert "mfa_used" in actions(app)


def test_a_second_factor_the_provider_reports_is_enough(app, factory, make_provider, oidc_provider, org, policy):
    account = factory.account(email="ada@acme.example", organization_id=org.id)
    enrol_totp(ApiClient(app.test_client(), factory.token(account)))
    make_provider()
    set_user(oidc_provider[0], "ada-pages-amr", email="ada@acme.example", amr=["pwd", "mfa"])
    client = browser(app)
    assert location(client.get(back_from_provider(app, client, "ada@acme.example", "ada-pages-amr"))) == "/signin"
    [session] = browser_sessions(app)
    assert session.account_id == account.id and session.amr == ["sso"]


def test_the_policy_without_a_factor_asks_for_enrolment(app, make_provider, oidc_provider, policy):
    make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "newbie-pages", email="newbie@acme.example")
    client = browser(app)
    answer = client.get(back_from_provider(app, client, "newbie@acme.example", "newbie-pages", NEXT))
    shown = page(answer, 403)
    assert "Set up a second factor first" in shown.text
    assert set_cookie(answer, "iam_browser") is None and client.get_cookie("iam_browser") is None
    assert browser_sessions(app) == []  # the session that may only enrol is not the browser's
    [session] = rows(app, AccountSession)
    assert session.enrollment_only and session.browser_digest is None


def test_the_provider_row_is_what_the_pages_look_up(app, make_provider, oidc_provider):
    """Home-realm discovery by the domain only: an email of the domain without an account still
    goes to the provider (the answer must not tell whether an account exists)."""
    provider_id = make_provider()  # no JIT
    start = location(email_step(browser(app), "nobody@ACME.example"))
    assert query_of(start)["identity_provider_id"] == str(provider_id)
    assert rows(app, Account) == [] and [p.id for p in rows(app, IdentityProvider)] == [provider_id]
