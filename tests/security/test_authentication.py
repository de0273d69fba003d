"""Logins, access tokens and the admin-only rule for resource endpoints."""
import hashlib
import time
from datetime import timedelta

import jwt
import pytest
from argon2 import PasswordHasher

from iam.config import DEV_SECRET_KEY
from iam.extensions import db
from iam.models import Account, ApiKey, utcnow
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of

LOGIN = "/auth/login"


def login(client, email, password):
    return client.post(LOGIN, {"email": email, "password": password})


def test_login_returns_a_token_that_opens_accounts_me(client, factory):
    factory.account(email="ada@example.com")
    body = assert_jsonapi(login(client, "Ada@Example.com", PASSWORD), 200)
    meta = body["meta"]
    assert meta["token_type"] == "Bearer" and meta["expires_at"].endswith("Z")
    client.token = meta["token"]
    me = assert_jsonapi(client.get("/accounts/me"), 200)
    assert me["data"]["attributes"]["email"] == "ada@example.com"
    assert me["data"]["attributes"]["last_login_at"] is not None


def test_login_accepts_a_jsonapi_wrapped_body(client, factory):
    factory.account(email="ada@example.com")
    body = {"data": {"type": "sessions", "attributes": {"email": "ada@example.com", "password": PASSWORD}}}
    assert "token" in assert_jsonapi(client.post(LOGIN, body), 200)["meta"]


@pytest.fixture
def failing_logins(factory):
    """Each way a login can fail, as (email, password)."""
    factory.account(email="ok@example.com")
    factory.account(email="disabled@example.com", enabled=False)
    factory.account(email="expired@example.com", expires_at=utcnow() - timedelta(seconds=1))
    factory.account(email="sso@example.com", auth_type="sso")
    factory.account(email="nopassword@example.com", password=False)
    return {
        "unknown email": ("nobody@example.com", PASSWORD),
        "wrong password": ("ok@example.com", PASSWORD + "!"),
        "disabled": ("disabled@example.com", PASSWORD),
        "expired": ("expired@example.com", PASSWORD),
        "sso account": ("sso@example.com", PASSWORD),
        "no password set": ("nopassword@example.com", PASSWORD),
    }


def test_every_failed_login_gets_the_same_401(client, failing_logins):
    answers = {}
    for case, (email, password) in failing_logins.items():
        response = login(client, email, password)
        error = error_of(response, 401)
        answers[case] = (response.get_data(), response.headers.get("WWW-Authenticate"))
        assert error["code"] == "invalid_credentials"
    assert len(set(answers.values())) == 1, answers


def test_unknown_email_costs_about_as_much_as_a_wrong_password(client, failing_logins):
    def timed(email, password):
        start = time.perf_counter()
        login(client, email, password)
        return time.perf_counter() - start

    unknown = min(timed(*failing_logins["unknown email"]) for _ in range(3))
    wrong = min(timed(*failing_logins["wrong password"]) for _ in range(3))
    # Both verify one Argon2 hash (~20 ms); without the dummy hash "unknown" takes ~1 ms.
    assert unknown > wrong * 0.5, (unknown, wrong)


@pytest.mark.parametrize("body, pointer", [
    ({"email": "a@example.com"}, "/password"),
    ({"password": "x"}, "/email"),
    ({"email": 5, "password": "x"}, "/email"),
])
def test_login_with_missing_or_bad_fields_is_a_422(client, body, pointer):
    error = error_of(client.post(LOGIN, body), 422)
    assert error["source"]["pointer"] == pointer


def test_passwords_are_stored_with_argon2id_at_owasp_parameters(app, admin, client):
    body = {"data": {"type": "accounts", "attributes": {"email": "new@example.com", "password": "a fine password"}}}
    created = assert_jsonapi(admin.post("/accounts", body), 201)
    with app.app_context():
        stored = db.session.get(Account, int(created["data"]["id"])).password_hash
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "a fine password" not in stored
    assert_jsonapi(login(client, "new@example.com", "a fine password"), 200)


def test_login_rehashes_a_password_stored_with_old_parameters(app, client, factory):
    account = factory.account(email="old@example.com")
    with app.app_context():
        row = db.session.get(Account, account.id)
        row.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        db.session.commit()
    assert_jsonapi(login(client, "old@example.com", PASSWORD), 200)
    with app.app_context():
        assert db.session.get(Account, account.id).password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def _claims(ids, **overrides):
    account_id, session_id = ids
    now = int(time.time())
    claims = {"sub": str(account_id), "sid": str(session_id), "iat": now, "exp": now + 600, "jti": "x",
              "typ": "access", "iss": "iam"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("make_token", [
    pytest.param(lambda aid: "not-a-jwt", id="garbage"),
    pytest.param(lambda aid: jwt.encode(_claims(aid), "another-secret-key-of-sufficient-length!", "HS256"),
                 id="wrong key"),
    pytest.param(lambda aid: jwt.encode(_claims(aid), DEV_SECRET_KEY, "HS512"), id="algorithm not allowed"),
    pytest.param(lambda aid: jwt.encode(_claims(aid), None, "none"), id="alg none"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, exp=int(time.time()) - 5), DEV_SECRET_KEY, "HS256"),
                 id="expired"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, jti=None), DEV_SECRET_KEY, "HS256"), id="no jti"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, typ="refresh"), DEV_SECRET_KEY, "HS256"), id="refresh type"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, sub="abc"), DEV_SECRET_KEY, "HS256"), id="bad subject"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, sub=str(aid[0] + 1000)), DEV_SECRET_KEY, "HS256"),
                 id="unknown account"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, sid=None), DEV_SECRET_KEY, "HS256"), id="no session"),
    pytest.param(lambda aid: jwt.encode(_claims(aid, sid=str(aid[1] + 1000)), DEV_SECRET_KEY, "HS256"),
                 id="unknown session"),
])
def test_forged_or_stale_tokens_get_401(app, client, factory, admin_account, make_token):
    client.token = make_token((admin_account.id, factory.session(admin_account)))
    error = error_of(client.get("/accounts/me"), 401)
    assert error["code"] == "unauthenticated"


def test_a_correctly_signed_token_of_our_own_shape_is_accepted(client, factory, admin_account):
    """The forged-token cases above fail for their one defect, not for the shape of the test token."""
    client.token = jwt.encode(_claims((admin_account.id, factory.session(admin_account))), DEV_SECRET_KEY, "HS256")
    assert_jsonapi(client.get("/accounts/me"), 200)


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Token abc"])
def test_missing_or_malformed_authorization_gets_401(client, header):
    response = client.client.get("/api/v3/iam/accounts/me", headers={"Authorization": header} if header else {})
    assert error_of(response, 401)["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("change", [
    {"enabled": False},
    {"expires_at": "past"},
])
def test_a_token_stops_working_once_its_account_is_disabled_or_expired(app, factory, change):
    account = factory.account(email="soon-gone@example.com")
    api = ApiClient(app.test_client(), factory.token(account))
    assert_jsonapi(api.get("/accounts/me"), 200)
    with app.app_context():
        row = db.session.get(Account, account.id)
        for key, value in change.items():
            setattr(row, key, utcnow() - timedelta(seconds=1) if value == "past" else value)
        db.session.commit()
    assert error_of(api.get("/accounts/me"), 401)["code"] == "unauthenticated"


def test_a_token_stops_working_once_its_account_is_deleted(app, admin, factory):
    account = factory.account(email="deleted@example.com")
    api = ApiClient(app.test_client(), factory.token(account))
    assert_jsonapi(api.get("/accounts/me"), 200)
    assert_jsonapi(admin.delete(f"/accounts/{account.id}"), 204)
    assert error_of(api.get("/accounts/me"), 401)["code"] == "unauthenticated"


@pytest.mark.parametrize("role, is_admin", [
    ({"name": "admin"}, True),
    ({"name": "admin", "scopes": {"organization": [1]}}, False),
    ({"name": "admin", "expires_at": "past"}, False),
    ({"name": "admin", "not_before": "future"}, False),
    ({"name": "auditor"}, False),
])
def test_global_admin_needs_an_admin_role_with_empty_scopes_valid_now(app, factory, role, is_admin):
    """Only a valid global admin sees every account and may create organizations."""
    now = utcnow()
    role = {k: (now - timedelta(seconds=5) if v == "past" else now + timedelta(hours=1) if v == "future" else v)
            for k, v in role.items()}
    factory.account(email="other@example.com")
    account = factory.account(email="someone@example.com", roles=[role])
    api = ApiClient(app.test_client(), factory.token(account))
    listed = assert_jsonapi(api.get("/accounts", {"count": "true"}), 200)
    assert listed["meta"]["count"] == (2 if is_admin else 1)
    body = {"data": {"type": "organizations", "attributes": {"name": "Acme", "slug": "acme"}}}
    response = api.post("/organizations", body)
    if is_admin:
        assert_jsonapi(response, 201)
    else:
        assert error_of(response, 403)["code"] == "forbidden"
    assert_jsonapi(api.get("/accounts/me"), 200)


def _store_key(app, account, raw, **kw):
    with app.app_context():
        db.session.add(ApiKey(account_id=account.id, name="script", prefix=raw[:8], scopes={},
                              key_digest=hashlib.sha256(raw.encode()).hexdigest(), **kw))
        db.session.commit()


@pytest.mark.parametrize("field", ["key", "api_key"])
def test_api_key_login(app, client, admin_account, field):
    raw = "IAM_" + "k" * 43
    _store_key(app, admin_account, raw)
    body = assert_jsonapi(client.post("/auth/api/login", {field: raw}), 200)
    client.token = body["meta"]["token"]
    assert assert_jsonapi(client.get("/accounts"), 200)["data"]
    with app.app_context():
        assert db.session.query(ApiKey).one().last_used_at is not None


@pytest.mark.parametrize("state", [{"revoked_at": "past"}, {"expires_at": "past"}, {}])
def test_unusable_api_keys_get_the_login_401(app, client, admin_account, state):
    raw = "IAM_" + "r" * 43
    _store_key(app, admin_account, raw, **{k: utcnow() - timedelta(seconds=1) for k in state})
    presented = raw if state else raw + "x"  # {}: a key that does not exist
    error = error_of(client.post("/auth/api/login", {"key": presented}), 401)
    assert error["code"] == "invalid_credentials"


def test_api_key_login_needs_a_key(client):
    assert error_of(client.post("/auth/api/login", {}), 422)["code"] == "required"


def test_passwords_are_checked_exactly_as_typed_and_may_be_long(app, admin, client):
    """A 100-character password works; its truncated, lower-cased or trimmed forms do not."""
    long_password = "Tr0ub4dor & " * 8 + "Fin!"
    body = {"data": {"type": "accounts", "attributes": {"email": "long@example.com", "password": long_password}}}
    assert_jsonapi(admin.post("/accounts", body), 201)
    for wrong in (long_password[:64], long_password.lower(), long_password.strip() + " ", " " + long_password):
        assert error_of(login(client, "long@example.com", wrong), 401)["code"] == "invalid_credentials"
    assert_jsonapi(login(client, "long@example.com", long_password), 200)


# ------------------------------------------------------------------ verified tokens are remembered (issue 12)
# A process verifies an access token's signature once and remembers its claims until it
# expires. Nothing that can change is remembered: these show each change still counts on the
# very next request after the token was used (and so remembered).

def test_a_remembered_token_stops_working_when_it_expires(app, factory):
    from iam.auth.tokens import issue_access_token

    account = factory.account(email="brief@example.com")
    session_id = factory.session(account)
    with app.test_request_context():
        token, expires_at = issue_access_token(account.id, session_id, not_after=utcnow() + timedelta(seconds=2))
    api = ApiClient(app.test_client(), token)
    assert_jsonapi(api.get("/accounts/me"), 200)
    assert_jsonapi(api.get("/accounts/me"), 200)  # the second use is the remembered one
    time.sleep(max(0.0, (expires_at - utcnow()).total_seconds()) + 0.05)
    assert error_of(api.get("/accounts/me"), 401)["code"] == "unauthenticated"


def test_a_token_remembered_by_one_key_is_refused_under_another(app, factory, make_app):
    account = factory.account(email="two-keys@example.com")
    token = factory.token(account)
    assert_jsonapi(ApiClient(app.test_client(), token).get("/accounts/me"), 200)
    other = make_app(IAM_SECRET_KEY="another-secret-key-" + "k" * 40)
    assert error_of(ApiClient(other.test_client(), token).get("/accounts/me"), 401)["code"] == "unauthenticated"


def test_a_removed_role_counts_on_the_next_request_of_a_remembered_token(app, factory, admin):
    account = factory.account(email="demoted@example.com", roles=["admin"])
    api = ApiClient(app.test_client(), factory.token(account))
    assert len(assert_jsonapi(api.get("/accounts"), 200)["data"]) == 2  # an admin sees every account
    role_id = assert_jsonapi(api.get("/accounts/me"), 200)["meta"]["effective_roles"][0]["role_id"]
    assert_jsonapi(admin.delete(f"/account_roles/{role_id}"), 204)
    # the very next request knows the role is gone: only its own account, and no admin's writes
    listed = assert_jsonapi(api.get("/accounts"), 200)["data"]
    assert [item["id"] for item in listed] == [str(account.id)]
    assert error_of(api.post("/organizations", {"data": {"type": "organizations",
                                                        "attributes": {"name": "No", "slug": "no"}}}), 403)


def test_a_changed_password_stops_other_sessions_remembered_tokens(app, factory):
    account = factory.account(email="changer@example.com")
    elsewhere = ApiClient(app.test_client(), factory.token(account))
    here = ApiClient(app.test_client(), factory.token(account))
    assert_jsonapi(elsewhere.get("/accounts/me"), 200)
    response = here.post("/account/passwords/change",
                         {"current_password": PASSWORD, "new_password": "a brand new passphrase 2026"})
    assert response.status_code == 204, response.get_data(as_text=True)
    assert error_of(elsewhere.get("/accounts/me"), 401)["code"] == "unauthenticated"
    assert_jsonapi(here.get("/accounts/me"), 200)
