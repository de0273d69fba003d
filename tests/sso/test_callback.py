"""The callback and the exchange against a real provider (oidc-provider-mock on localhost): the
whole sign-in without and with return_to, just-in-time creation, linking by email inside the
provider's organization only, the second sign-in, and the refusals that do not need a forged
token (those are in test_id_token_refusals.py)."""
import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from iam.extensions import db
from iam.models import (Account, AccountIdentity, AccountRole, AccountSession, AuditEvent, IdentityProvider, Person,
                        SsoAttempt, SsoCode, utcnow)
from tests.helpers import API, ApiClient, assert_jsonapi, error_of, rows
from tests.helpers import audit_actions as actions
from tests.sso.flows import CALLBACK, EXCHANGE, authorize, begin, set_user, sign_in

RETURN_TO = "https://app.example.com/signed-in"


@pytest.fixture
def return_urls(app):
    app.config["IAM_SSO_RETURN_URLS"] = ["https://app.example.com/signed-in"]
    yield
    app.config["IAM_SSO_RETURN_URLS"] = []


def failure_reasons(app):
    return [event.changes.get("reason", "") for event in rows(app, AuditEvent, AuditEvent.action == "sso_failed")]


def me(app, token):
    return ApiClient(app.test_client(), token).get("/accounts/me")


def test_first_sign_in_creates_the_account_with_the_providers_roles_and_claims(app, make_provider, oidc_provider,
                                                                                 org):
    provider_id = make_provider(jit_provisioning=True, default_roles=[{"name": "viewer", "scopes": {}}],
                                claim_mapping={"first_name": "given_name", "last_name": "family_name",
                                               "picture_url": "picture", "contact_number": "phone_number"})
    set_user(oidc_provider[0], "ada-1", email="Ada@Acme.example", given_name="Ada", family_name="Lovelace",
             picture="https://pictures.example/ada.png", phone_number="+44 20 7946 0000")
    answer = sign_in(app.test_client(), provider_id, "ada-1")
    body = assert_jsonapi(answer, 200)
    assert body["data"]["type"] == "account_sessions" and body["data"]["attributes"]["amr"] == ["sso"]
    assert body["meta"]["token"] and body["meta"]["refresh_token"]
    [account] = rows(app, Account)
    assert account.email == "Ada@acme.example" and account.auth_type == "sso" and account.password_hash is None
    assert account.organization_id == org.id and account.last_login_at is not None
    [person] = rows(app, Person)
    assert (person.first_name, person.last_name, person.picture_url, person.organization_id) == (
        "Ada", "Lovelace", "https://pictures.example/ada.png", org.id)
    assert person.contact_number is None  # phone_number is not in the scopes asked for: not in the token
    [role] = rows(app, AccountRole)
    assert (role.account_id, role.name, role.scopes) == (account.id, "viewer", {})
    [identity] = rows(app, AccountIdentity)
    assert (identity.account_id, identity.identity_provider_id, identity.subject) == (account.id, provider_id, "ada-1")
    assert actions(app) == ["sso_jit", "sso_login"]
    # The token is a real one: it reads the account it signed in.
    mine = assert_jsonapi(me(app, body["meta"]["token"]), 200)
    assert mine["data"]["id"] == str(account.id) and mine["data"]["attributes"]["auth_type"] == "sso"
    [attempt] = rows(app, SsoAttempt)
    assert attempt.used_at is not None


def test_a_second_sign_in_is_the_same_account(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-2", email="ada@acme.example")
    first = assert_jsonapi(sign_in(app.test_client(), provider_id, "ada-2"), 200)
    [identity] = rows(app, AccountIdentity)
    # The provider's email may change: the link is the subject, and the email follows it.
    set_user(oidc_provider[0], "ada-2", email="ada.lovelace@acme.example")
    second = assert_jsonapi(sign_in(app.test_client(), provider_id, "ada-2"), 200)
    assert first["meta"]["account_id"] == second["meta"]["account_id"]
    assert first["data"]["id"] != second["data"]["id"]  # a session each
    assert len(rows(app, Account)) == 1
    [again] = rows(app, AccountIdentity)
    assert again.email == "ada.lovelace@acme.example" and again.last_login_at > identity.last_login_at
    assert actions(app) == ["sso_jit", "sso_login", "sso_login"]


def test_an_account_with_the_email_in_the_organization_is_linked(app, make_provider, oidc_provider, factory, org):
    account = factory.account(email="grace@acme.example", organization_id=org.id)
    provider_id = make_provider()  # no JIT: linking needs none
    set_user(oidc_provider[0], "grace-1", email="GRACE@acme.example")
    body = assert_jsonapi(sign_in(app.test_client(), provider_id, "grace-1"), 200)
    assert body["meta"]["account_id"] == str(account.id)
    [identity] = rows(app, AccountIdentity)
    assert identity.account_id == account.id and identity.subject == "grace-1"
    [stored] = rows(app, Account)
    assert stored.auth_type == "password"  # linking does not change how else it may sign in
    assert actions(app) == ["sso_link", "sso_login"]


def test_an_account_of_another_organization_is_never_linked(app, make_provider, oidc_provider, factory):
    other = factory.organization(slug="other")
    factory.account(email="mallory@acme.example", organization_id=other.id)
    factory.account(email="nobody-org@acme.example")  # an account without an organization
    provider_id = make_provider(jit_provisioning=True)
    for sub, email in (("mallory-1", "mallory@acme.example"), ("nobody-1", "nobody-org@acme.example")):
        set_user(oidc_provider[0], sub, email=email)
        assert error_of(sign_in(app.test_client(), provider_id, sub), 401)["code"] == "no_account"
    assert rows(app, AccountIdentity) == [] and len(rows(app, Account)) == 2
    assert rows(app, AccountSession) == []
    assert actions(app) == ["sso_failed", "sso_failed"]
    assert all("outside the provider's organization" in reason for reason in failure_reasons(app))


def test_no_account_and_no_jit_is_no_account(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=False)
    set_user(oidc_provider[0], "newcomer", email="newcomer@acme.example")
    error = error_of(sign_in(app.test_client(), provider_id, "newcomer"), 401)
    assert error["code"] == "no_account"
    assert rows(app, Account) == [] and rows(app, Person) == [] and rows(app, AccountSession) == []
    [event] = rows(app, AuditEvent)
    assert event.action == "sso_failed" and event.resource_id == str(provider_id) and "newcomer" in event.changes["reason"]


def test_an_account_linked_to_another_subject_is_not_taken_over(app, make_provider, oidc_provider, factory, org):
    account = factory.account(email="lin@acme.example", organization_id=org.id)
    provider_id = make_provider()
    with app.app_context():
        db.session.add(AccountIdentity(account_id=account.id, identity_provider_id=provider_id, subject="lin-old",
                                       email="lin@acme.example"))
        db.session.commit()
    # The provider gave the address to someone else (a new subject): they are not the old holder.
    set_user(oidc_provider[0], "lin-new", email="lin@acme.example")
    assert error_of(sign_in(app.test_client(), provider_id, "lin-new"), 401)["code"] == "sso_failed"
    assert [i.subject for i in rows(app, AccountIdentity)] == ["lin-old"]
    assert "another subject" in failure_reasons(app)[0]


def test_with_return_to_the_browser_gets_a_code_the_application_trades_once(app, make_provider, oidc_provider,
                                                                          return_urls):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-3", email="ada3@acme.example")
    answer = sign_in(app.test_client(), provider_id, "ada-3", return_to=RETURN_TO + "?tab=home")
    assert answer.status_code == 302 and answer.headers["Referrer-Policy"] == "no-referrer"
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_TO
    query = parse_qs(location.query)
    assert query["tab"] == ["home"] and set(query) == {"tab", "sso_code"}  # no token in the URL
    code = query["sso_code"][0]
    [stored] = rows(app, SsoCode)
    assert code not in stored.code_digest and stored.expires_at - stored.created_at == timedelta(seconds=60)
    client = ApiClient(app.test_client())
    traded = assert_jsonapi(client.post(EXCHANGE, {"code": code}), 200)
    assert traded["data"]["attributes"]["amr"] == ["sso"]
    assert traded["meta"]["token"] and traded["meta"]["refresh_token"]
    assert me(app, traded["meta"]["token"]).status_code == 200
    # The refresh token works like a login's.
    refreshed = client.post("/auth/refresh", {"refresh_token": traded["meta"]["refresh_token"]})
    assert refreshed.status_code == 200
    # A second use is refused, and ends the session the code opened (a copy of it leaked).
    assert error_of(client.post(EXCHANGE, {"code": code}), 401)["code"] == "sso_failed"
    assert me(app, traded["meta"]["token"]).status_code == 401
    assert "token_reuse" in actions(app)


def test_exchange_refusals(app, make_provider, oidc_provider, return_urls):
    client = ApiClient(app.test_client())
    assert error_of(client.post(EXCHANGE, {"code": "nothing-like-it"}), 401)["code"] == "sso_failed"
    assert error_of(client.post(EXCHANGE, {}), 422)["source"]["pointer"] == "/code"
    assert error_of(client.post(EXCHANGE, raw="[1]"), 400)["code"] == "invalid_document"
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-4", email="ada4@acme.example")
    answer = sign_in(app.test_client(), provider_id, "ada-4", return_to=RETURN_TO)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["sso_code"][0]
    with app.app_context():  # 61 seconds later
        db.session.execute(update(SsoCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert error_of(client.post(EXCHANGE, {"code": code}), 401)["code"] == "sso_failed"
    # The session of an expired code was never handed out; a disabled account's code trades nothing.
    answer = sign_in(app.test_client(), provider_id, "ada-4", return_to=RETURN_TO)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["sso_code"][0]
    with app.app_context():
        db.session.execute(update(Account).values(enabled=False))
        db.session.commit()
    assert error_of(client.post(EXCHANGE, {"code": code}), 401)["code"] == "sso_failed"


def test_a_replayed_or_forged_state_is_refused(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-5", email="ada5@acme.example")
    browser = app.test_client()
    callback = authorize(begin(browser, provider_id), "ada-5")
    assert browser.get(callback).status_code == 200
    replay = error_of(browser.get(callback), 401)
    assert replay["code"] == "sso_failed"
    forged = error_of(browser.get(CALLBACK, query_string={"state": "x" * 43, "code": "abc"}), 401)
    assert forged == replay  # one answer, whatever failed
    assert len(rows(app, AccountSession)) == 1
    assert failure_reasons(app) == ["the state is unknown, used or expired"] * 2


def test_an_expired_attempt_is_refused(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-6", email="ada6@acme.example")
    browser = app.test_client()
    callback = authorize(begin(browser, provider_id), "ada-6")
    with app.app_context():  # ten minutes later
        db.session.execute(update(SsoAttempt).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert error_of(browser.get(callback), 401)["code"] == "sso_failed"
    assert rows(app, Account) == []


def test_a_callback_in_another_browser_is_refused(app, make_provider, oidc_provider):
    """A login CSRF: the attacker starts a sign-in and gets the victim's browser to finish it."""
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "eve-1", email="eve@acme.example")
    callback = authorize(begin(app.test_client(), provider_id), "eve-1")
    assert error_of(app.test_client().get(callback), 401)["code"] == "sso_failed"
    assert rows(app, Account) == [] and "another browser" in failure_reasons(app)[0]


@pytest.mark.parametrize("claims, reason", [
    ({"email_verified": False}, "has not verified"),
    ({"email_verified": "false"}, "has not verified"),
    ({"email_verified": None}, "has not verified"),
    ({"email": "ada@elsewhere.example"}, "outside the provider's email domains"),
    ({"email": "ada@sub.acme.example"}, "outside the provider's email domains"),
    ({"email": None}, "no email"),
])
def test_the_email_must_be_verified_and_in_the_providers_domains(app, make_provider, oidc_provider, claims, reason):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-7", **claims)
    assert error_of(sign_in(app.test_client(), provider_id, "ada-7"), 401)["code"] == "sso_failed"
    assert rows(app, Account) == [] and rows(app, AccountSession) == []
    assert reason in failure_reasons(app)[0]


def test_the_string_true_counts_as_verified(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-8", email="ada8@acme.example", email_verified="true")
    assert sign_in(app.test_client(), provider_id, "ada-8").status_code == 200


def test_a_provider_disabled_during_the_sign_in_is_refused(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-9", email="ada9@acme.example")
    browser = app.test_client()
    callback = authorize(begin(browser, provider_id), "ada-9")
    with app.app_context():
        db.session.execute(update(IdentityProvider).values(enabled=False))
        db.session.commit()
    assert error_of(browser.get(callback), 401)["code"] == "sso_failed"
    assert rows(app, Account) == [] and failure_reasons(app) == ["the identity provider is disabled"]


@pytest.mark.parametrize("change", [{"enabled": False}, {"expires_at": "past"}])
def test_a_disabled_or_expired_account_is_refused(app, make_provider, oidc_provider, factory, org, change):
    if change.get("expires_at") == "past":
        change = {"expires_at": utcnow() - timedelta(days=1)}
    account = factory.account(email="old@acme.example", organization_id=org.id, **change)
    provider_id = make_provider()
    set_user(oidc_provider[0], "old-1", email="old@acme.example")
    assert error_of(sign_in(app.test_client(), provider_id, "old-1"), 401)["code"] == "sso_failed"
    assert rows(app, AccountSession) == [] and rows(app, AccountIdentity) == []  # the link is not kept either
    [event] = rows(app, AuditEvent)
    assert event.action == "sso_failed" and event.actor_account_id == account.id


def test_the_provider_refusing_the_sign_in_is_sso_failed(app, make_provider, oidc_provider):
    provider_id = make_provider(jit_provisioning=True)
    browser = app.test_client()
    location = begin(browser, provider_id)
    state = parse_qs(urlsplit(location).query)["state"][0]
    # The person pressed "deny": the provider sends the browser back with an error.
    answer = browser.get(CALLBACK, query_string={"state": state, "error": "access_denied",
                                                 "error_description": "The user denied"})
    assert error_of(answer, 401)["code"] == "sso_failed"
    assert "access_denied" in failure_reasons(app)[0]


@pytest.mark.parametrize("query, parameter", [
    ({}, "state"),
    ({"code": "abc"}, "state"),
    ({"state": "x" * 513, "code": "abc"}, "state"),
    ({"state": "abc"}, "code"),
    ({"state": "abc", "code": ""}, "code"),
])
def test_malformed_callbacks_are_400s(app, query, parameter):
    error = error_of(app.test_client().get(CALLBACK, query_string=query), 400)
    assert error["source"]["parameter"] == parameter
    with app.app_context():
        assert db.session.scalars(select(AuditEvent)).all() == []


def test_the_client_secret_and_the_tokens_are_in_no_log_or_audit_event(app, make_provider, oidc_provider, caplog,
                                                                         return_urls):
    provider_id = make_provider(jit_provisioning=True, client_secret="a-very-secret-client-secret-1234")
    set_user(oidc_provider[0], "ada-10", email="ada10@acme.example")
    caplog.set_level(logging.DEBUG)
    browser = app.test_client()
    callback = authorize(begin(browser, provider_id), "ada-10")
    query = parse_qs(urlsplit(callback).query)
    body = assert_jsonapi(browser.get(callback), 200)
    back = sign_in(app.test_client(), provider_id, "ada-10", return_to=RETURN_TO)
    code = parse_qs(urlsplit(back.headers["Location"]).query)["sso_code"][0]
    traded = assert_jsonapi(ApiClient(app.test_client()).post(EXCHANGE, {"code": code}), 200)
    secrets = ["a-very-secret-client-secret-1234", body["meta"]["token"], body["meta"]["refresh_token"],
               traded["meta"]["refresh_token"], code, query["code"][0], query["state"][0]]
    with app.app_context():
        events = repr([(e.action, e.changes) for e in db.session.scalars(select(AuditEvent))])
        stored = repr([vars(p) for p in db.session.scalars(select(IdentityProvider))])
    # What this server logged (the test's own requests to the provider, as a browser's, log too).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("iam", app.logger.name))
    for secret in secrets:
        assert secret not in logged and secret not in events
    assert "a-very-secret-client-secret-1234" not in stored
    assert "sso_login" in events
    logged_callback = next(json.loads(r.getMessage()) for r in caplog.records
                           if r.name == "iam.access" and "/auth/sso/callback" in r.getMessage())
    assert logged_callback["query"] == {"code": "[redacted]", "state": "[redacted]"}


def test_the_flow_is_in_the_openapi_document(app):
    paths = app.test_client().get(f"{API}/openapi.json").get_json()["paths"]
    assert {"get"} <= set(paths["/auth/sso/callback"]) and {"post"} <= set(paths["/auth/sso/exchange"])


def test_sso_linked_shows_and_filters_the_linked_accounts(app, make_provider, oidc_provider, factory, org, admin):
    plain = factory.account(email="plain@acme.example", organization_id=org.id)
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-11", email="ada11@acme.example")
    body = assert_jsonapi(sign_in(app.test_client(), provider_id, "ada-11"), 200)
    linked = body["meta"]["account_id"]
    mine = assert_jsonapi(me(app, body["meta"]["token"]), 200)
    assert mine["data"]["attributes"]["sso_linked"] is True
    listed = assert_jsonapi(admin.get("/accounts", {"filter[sso_linked]": "true"}), 200)
    assert [item["id"] for item in listed["data"]] == [linked]
    assert listed["data"][0]["attributes"]["sso_linked"] is True
    unlinked = assert_jsonapi(admin.get("/accounts", {"filter[sso_linked]": "false", "count": "true"}), 200)
    assert str(plain.id) in [item["id"] for item in unlinked["data"]] and linked not in [
        item["id"] for item in unlinked["data"]]
    assert all(item["attributes"]["sso_linked"] is False for item in unlinked["data"])
    assert unlinked["meta"]["count"] == len(unlinked["data"])
    assert error_of(admin.get("/accounts", {"filter[sso_linked]": "maybe"}), 400)["source"]["parameter"] == \
        "filter[sso_linked]"
    # Read beside the identity it comes from (the included account of an identity).
    both = assert_jsonapi(admin.get("/account_identities", {"include": "account"}), 200)
    assert [a["attributes"]["sso_linked"] for a in both["included"]] == [True]
    # Unlinking (DELETE /account_identities/:id) turns it off.
    [identity] = rows(app, AccountIdentity)
    assert admin.delete(f"/account_identities/{identity.id}").status_code == 204
    assert assert_jsonapi(me(app, body["meta"]["token"]), 200)["data"]["attributes"]["sso_linked"] is False


def test_a_start_sweeps_expired_attempts_and_codes(app, make_provider, oidc_provider, return_urls):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-12", email="ada12@acme.example")
    sign_in(app.test_client(), provider_id, "ada-12", return_to=RETURN_TO)
    begin(app.test_client(), provider_id)
    with app.app_context():
        past = utcnow() - timedelta(seconds=1)
        db.session.execute(update(SsoAttempt).values(expires_at=past))
        db.session.execute(update(SsoCode).values(expires_at=past))
        db.session.commit()
    begin(app.test_client(), provider_id)
    assert len(rows(app, SsoAttempt)) == 1 and rows(app, SsoCode) == []
    assert len(rows(app, AccountSession)) == 1  # the session stays: only the code is gone


def test_failed_callbacks_and_exchanges_count_like_failed_logins(app, make_provider, oidc_provider,
                                                                  three_failures_a_minute):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "ada-13", email="ada13@acme.example")
    # Successful sign-ins from an address are never counted against it.
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    for _ in range(4):
        assert sign_in(browser, provider_id, "ada-13").status_code == 200
    prober = app.test_client()
    prober.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    forged = {"state": "x" * 43, "code": "abc"}
    assert prober.get(CALLBACK, query_string=forged).status_code == 401
    assert ApiClient(prober).post(EXCHANGE, {"code": "guess"}).status_code == 401
    assert prober.get(CALLBACK, query_string=forged).status_code == 401
    limited = prober.get(CALLBACK, query_string=forged)
    assert error_of(limited, 429) and int(limited.headers["Retry-After"]) > 0
    assert ApiClient(prober).post(EXCHANGE, {"code": "guess"}).status_code == 429
    # Another address is not held back.
    assert sign_in(browser, provider_id, "ada-13").status_code == 200
