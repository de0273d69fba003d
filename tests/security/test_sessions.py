"""Sessions and tokens: logout, revocation, refresh rotation and reuse, API keys."""
import hashlib
import logging

import pytest
from sqlalchemy import select, text

from iam.extensions import db
from iam.models import ApiKey, AuditEvent
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of


def login(app, email):
    client = ApiClient(app.test_client())
    body = assert_jsonapi(client.post("/auth/login", {"email": email, "password": PASSWORD}), 200)
    client.token = body["meta"]["token"]
    client.refresh_token = body["meta"]["refresh_token"]
    client.session_id = body["data"]["id"]
    return client, body


def refresh(app, refresh_token):
    return ApiClient(app.test_client()).post("/auth/refresh", {"refresh_token": refresh_token})


def audit_actions(app):
    with app.app_context():
        return [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


@pytest.fixture
def ada(factory):
    return factory.account(email="ada@example.com")


def test_login_answers_with_the_new_session_and_a_token_pair(app, ada):
    client, body = login(app, "ada@example.com")
    assert body["data"]["type"] == "account_sessions"
    attributes = body["data"]["attributes"]
    assert attributes["status"] == "active" and attributes["account_id"] == ada.id
    assert body["meta"]["token_type"] == "Bearer" and body["meta"]["refresh_token"]
    session = assert_jsonapi(client.get(f"/account_sessions/{client.session_id}"), 200)
    assert session["data"]["attributes"]["status"] == "active"
    # How it was authenticated (RFC 8176), and when: the moment it was opened.
    assert attributes["amr"] == session["data"]["attributes"]["amr"] == ["pwd"]
    assert attributes["auth_time"] == attributes["created_at"]
    assert audit_actions(app) == ["login"]


def test_logout_ends_the_session_on_the_next_request(app, ada):
    client, _ = login(app, "ada@example.com")
    assert_jsonapi(client.get("/accounts/me"), 200)
    assert client.post("/auth/logout").status_code == 204
    assert error_of(client.get("/accounts/me"), 401)["code"] == "unauthenticated"
    assert error_of(refresh(app, client.refresh_token), 401)["code"] == "invalid_token"
    assert "logout" in audit_actions(app)


def test_a_revoked_sessions_unexpired_access_token_gets_401(app, ada):
    client, _ = login(app, "ada@example.com")
    other, _ = login(app, "ada@example.com")
    assert other.delete(f"/account_sessions/{client.session_id}").status_code == 204
    assert error_of(client.get("/accounts/me"), 401)["code"] == "unauthenticated"
    assert_jsonapi(other.get("/accounts/me"), 200)  # only that one session ended
    ended = assert_jsonapi(other.get(f"/account_sessions/{client.session_id}"), 200)["data"]["attributes"]
    assert ended["status"] == "revoked" and ended["revoked_at"]


def test_refresh_rotates_the_pair(app, ada):
    client, _ = login(app, "ada@example.com")
    body = assert_jsonapi(refresh(app, client.refresh_token), 200)
    assert body["data"]["id"] == client.session_id  # same session, new tokens
    assert body["meta"]["refresh_token"] != client.refresh_token
    fresh = ApiClient(app.test_client(), body["meta"]["token"])
    assert_jsonapi(fresh.get("/accounts/me"), 200)
    assert_jsonapi(refresh(app, body["meta"]["refresh_token"]), 200)


def test_reusing_a_refresh_token_ends_the_whole_session(app, ada):
    client, _ = login(app, "ada@example.com")
    rotated = assert_jsonapi(refresh(app, client.refresh_token), 200)["meta"]
    # The first token is presented again: it leaked. Everything of that session dies.
    assert error_of(refresh(app, client.refresh_token), 401)["code"] == "invalid_token"
    assert error_of(ApiClient(app.test_client(), rotated["token"]).get("/accounts/me"), 401)
    assert error_of(client.get("/accounts/me"), 401)
    assert error_of(refresh(app, rotated["refresh_token"]), 401)
    assert "token_reuse" in audit_actions(app)


@pytest.mark.parametrize("body, status", [
    ({"refresh_token": "not-a-token"}, 401), ({}, 422), ({"refresh_token": ""}, 422),
])
def test_bad_refresh_requests(app, body, status):
    assert_jsonapi(ApiClient(app.test_client()).post("/auth/refresh", body), status)


def test_a_refresh_token_is_not_an_access_token(app, ada):
    client, _ = login(app, "ada@example.com")
    assert error_of(ApiClient(app.test_client(), client.refresh_token).get("/accounts/me"), 401)


def test_a_disabled_account_cannot_refresh(app, admin, ada):
    client, _ = login(app, "ada@example.com")
    assert_jsonapi(admin.patch(f"/accounts/{ada.id}", {"data": {"type": "accounts", "id": str(ada.id),
                                                                 "attributes": {"enabled": False}}}), 200)
    assert error_of(refresh(app, client.refresh_token), 401)["code"] == "invalid_token"


def test_people_see_and_end_only_their_own_sessions(app, factory, ada):
    mine, _ = login(app, "ada@example.com")
    factory.account(email="bob@example.com")
    bobs, _ = login(app, "bob@example.com")
    listed = assert_jsonapi(mine.get("/account_sessions", {"count": "true"}), 200)
    assert [s["id"] for s in listed["data"]] == [mine.session_id] and listed["meta"]["count"] == 1
    assert error_of(mine.get(f"/account_sessions/{bobs.session_id}"), 404)["code"] == "not_found"
    assert error_of(mine.delete(f"/account_sessions/{bobs.session_id}"), 404)
    assert_jsonapi(bobs.get("/accounts/me"), 200)
    assert error_of(mine.post("/account_sessions", {"data": {"type": "account_sessions"}}), 405)


def test_admins_see_every_session(app, admin, ada):
    login(app, "ada@example.com")
    body = assert_jsonapi(admin.get("/account_sessions", {"filter[account_id]": str(ada.id)}), 200)
    assert len(body["data"]) == 1


def test_filter_sessions_by_status(app, ada):
    first, _ = login(app, "ada@example.com")
    second, _ = login(app, "ada@example.com")
    second.delete(f"/account_sessions/{first.session_id}")
    active = assert_jsonapi(second.get("/account_sessions", {"filter[status]": "active"}), 200)
    revoked = assert_jsonapi(second.get("/account_sessions", {"filter[status]": "revoked"}), 200)
    assert [s["id"] for s in active["data"]] == [second.session_id]
    assert [s["id"] for s in revoked["data"]] == [first.session_id]


# ------------------------------------------------------------------ API keys

def create_key(client, **attributes):
    attributes.setdefault("name", "nightly")
    return client.post("/api_keys", {"data": {"type": "api_keys", "attributes": attributes}})


def key_login(app, raw):
    return ApiClient(app.test_client()).post("/auth/api/login", {"key": raw})


def test_create_an_api_key_shows_it_once(app, user):
    response = create_key(user)
    body = assert_jsonapi(response, 201)
    raw = body["meta"]["key"]
    attributes = body["data"]["attributes"]
    assert raw.startswith("IAM_") and attributes["prefix"] == raw[:8]
    assert attributes["account_id"] == user.account.id and attributes["status"] == "active"
    again = assert_jsonapi(user.get(f"/api_keys/{body['data']['id']}"), 200)
    assert "meta" not in again or "key" not in again.get("meta", {})
    with app.app_context():
        stored = db.session.get(ApiKey, int(body["data"]["id"]))
        assert stored.key_digest == hashlib.sha256(raw.encode()).hexdigest()
    key_session = assert_jsonapi(key_login(app, raw), 200)
    assert key_session["data"]["attributes"]["amr"] == ["api_key"]
    token = key_session["meta"]["token"]
    assert_jsonapi(ApiClient(app.test_client(), token).get("/accounts/me"), 200)


def test_only_admins_create_keys_for_other_accounts(app, admin, user, factory):
    other = factory.account(email="other@example.com")
    # Another account is invisible to a plain account, so for it that id names nothing.
    error = error_of(create_key(user, account_id=other.id), 422)
    assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/attributes/account_id"
    assert_jsonapi(create_key(admin, account_id=other.id), 201)


def test_people_list_only_their_own_keys(app, admin, user):
    assert_jsonapi(create_key(admin), 201)
    mine = assert_jsonapi(create_key(user), 201)["data"]["id"]
    listed = assert_jsonapi(user.get("/api_keys", {"count": "true"}), 200)
    assert [k["id"] for k in listed["data"]] == [mine] and listed["meta"]["count"] == 1


@pytest.mark.parametrize("how", ["delete", "revoke"])
def test_revoking_a_key_stops_its_sessions_at_once(app, user, how):
    body = assert_jsonapi(create_key(user), 201)
    key_id, raw = body["data"]["id"], body["meta"]["key"]
    script = ApiClient(app.test_client(), assert_jsonapi(key_login(app, raw), 200)["meta"]["token"])
    assert_jsonapi(script.get("/accounts/me"), 200)
    if how == "delete":
        assert user.delete(f"/api_keys/{key_id}").status_code == 204
    else:
        revoked = assert_jsonapi(user.post(f"/api_keys/{key_id}/revoke"), 200)
        assert revoked["data"]["attributes"]["status"] == "revoked"
    assert error_of(script.get("/accounts/me"), 401)
    assert error_of(key_login(app, raw), 401)["code"] == "invalid_credentials"
    listed = assert_jsonapi(user.get("/api_keys", {"filter[status]": "revoked"}), 200)
    assert [k["id"] for k in listed["data"]] == [key_id]


def test_a_read_only_key_may_only_read(app, user):
    raw = assert_jsonapi(create_key(user, scopes={"read_only": True}), 201)["meta"]["key"]
    script = ApiClient(app.test_client(), assert_jsonapi(key_login(app, raw), 200)["meta"]["token"])
    assert_jsonapi(script.get("/accounts/me"), 200)
    assert_jsonapi(script.get("/api_keys"), 200)
    me = {"data": {"type": "accounts", "attributes": {"preferences": {"x": 1}}}}
    assert error_of(script.patch("/accounts/me", me), 403)["code"] == "forbidden"
    assert error_of(create_key(script), 403)["code"] == "forbidden"


@pytest.mark.parametrize("attributes, pointer", [
    ({"expires_at": "2001-01-01T00:00:00Z"}, "/data/attributes/expires_at"),
    ({"scopes": {"admin": True}}, "/data/attributes/scopes"),
    ({"name": ""}, "/data/attributes/name"),
])
def test_invalid_keys_are_422(user, attributes, pointer):
    assert error_of(create_key(user, **attributes), 422)["source"]["pointer"] == pointer


def test_only_a_keys_name_can_change(user):
    key = assert_jsonapi(create_key(user), 201)["data"]
    patch = {"data": {"type": "api_keys", "id": key["id"], "attributes": {"name": "renamed"}}}
    assert assert_jsonapi(user.patch(f"/api_keys/{key['id']}", patch), 200)["data"]["attributes"]["name"] == "renamed"
    patch["data"]["attributes"] = {"scopes": {"read_only": True}}
    assert error_of(user.patch(f"/api_keys/{key['id']}", patch), 422)["code"] == "read_only"


def test_an_expired_key_cannot_log_in(app, user):
    from datetime import timedelta
    from iam.models import utcnow
    body = assert_jsonapi(create_key(user, expires_at=(utcnow() + timedelta(hours=1)).isoformat()), 201)
    with app.app_context():
        row = db.session.get(ApiKey, int(body["data"]["id"]))
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert error_of(key_login(app, body["meta"]["key"]), 401)
    assert assert_jsonapi(user.get(f"/api_keys/{body['data']['id']}"), 200)["data"]["attributes"]["status"] == "expired"


# ------------------------------------------------------------------ secrets at rest and in logs

def test_raw_tokens_and_keys_are_never_stored_or_logged(app, user, ada, caplog):
    caplog.set_level(logging.DEBUG)
    client, body = login(app, "ada@example.com")
    rotated = assert_jsonapi(refresh(app, client.refresh_token), 200)["meta"]
    raw_key = assert_jsonapi(create_key(user), 201)["meta"]["key"]
    key_token = assert_jsonapi(key_login(app, raw_key), 200)["meta"]["token"]
    secrets = [PASSWORD, client.token, client.refresh_token, rotated["token"], rotated["refresh_token"],
               raw_key, key_token]

    with app.app_context():
        dump = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(text(f"SELECT * FROM {table.name}")):
                dump.append(" ".join(str(value) for value in row))
    dump = "\n".join(dump)
    assert dump  # the scan really read rows
    for secret in secrets:
        assert secret not in dump
        assert secret not in caplog.text


def test_disabling_an_account_ends_its_sessions_for_good(app, admin, ada):
    client, _ = login(app, "ada@example.com")
    body = {"data": {"type": "accounts", "id": str(ada.id), "attributes": {"enabled": False}}}
    assert_jsonapi(admin.patch(f"/accounts/{ada.id}", body), 200)
    body["data"]["attributes"]["enabled"] = True
    assert_jsonapi(admin.patch(f"/accounts/{ada.id}", body), 200)
    # Enabled again, but the sessions of before stay ended.
    assert error_of(client.get("/accounts/me"), 401)
    assert error_of(refresh(app, client.refresh_token), 401)
    assert_jsonapi(login(app, "ada@example.com")[0].get("/accounts/me"), 200)


def test_an_idle_session_ends(app, ada):
    from datetime import timedelta
    from iam.models import AccountSession, utcnow
    client, _ = login(app, "ada@example.com")
    with app.app_context():
        session = db.session.get(AccountSession, int(client.session_id))
        session.last_used_at = utcnow() - timedelta(seconds=app.config["IAM_SESSION_IDLE_TIMEOUT"] + 1)
        db.session.commit()
    assert error_of(client.get("/accounts/me"), 401)
    assert error_of(refresh(app, client.refresh_token), 401)["code"] == "invalid_token"


def test_a_session_ends_at_its_absolute_lifetime_however_active(app, ada):
    from datetime import timedelta
    from iam.models import AccountSession, utcnow
    client, body = login(app, "ada@example.com")
    expires_at = body["data"]["attributes"]["expires_at"]
    assert expires_at  # set at login: IAM_REFRESH_TOKEN_TTL from now
    with app.app_context():
        session = db.session.get(AccountSession, int(client.session_id))
        session.expires_at = utcnow() - timedelta(seconds=1)
        session.last_used_at = utcnow()  # active a moment ago: the absolute limit still wins
        db.session.commit()
    assert error_of(client.get("/accounts/me"), 401)
    assert error_of(refresh(app, client.refresh_token), 401)["code"] == "invalid_token"
