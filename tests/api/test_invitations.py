"""Invitations: create (mailed over real SMTP), accept, resend, revoke, expire, and who may invite."""
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from iam.extensions import db
from iam.models import Account, Invitation, utcnow
from tests.helpers import ApiClient, assert_jsonapi, error_of

INVITE_URL = "https://app.example/invite?token={token}"
PASSWORD = "an invited passphrase"


@pytest.fixture
def inbox(app, smtp_inbox):
    app.config["IAM_INVITATION_URL"] = INVITE_URL
    yield smtp_inbox
    app.config["IAM_INVITATION_URL"] = ""


@pytest.fixture
def org(factory):
    return factory.organization(name="Acme", slug="acme")


def invite(client, org, email="new@example.com", roles=None):
    return client.post("/invitations", {"data": {"type": "invitations", "attributes": {
        "email": email, "organization_id": org.id, "roles": roles if roles is not None else []}}})


def token_in(message):
    body = message.get_payload(decode=True).decode()
    return re.search(r"https://app\.example/invite\?token=(\S+)", body).group(1)


def accept(app, token, password=PASSWORD, **names):
    return ApiClient(app.test_client()).post("/invitations/accept", {"token": token, "password": password, **names})


def test_an_invitation_becomes_an_account_that_is_logged_in(app, admin, admin_account, org, inbox):
    roles = [{"name": "editor", "scopes": {"organization": [org.id]}}, {"name": "viewer"}]
    created = assert_jsonapi(invite(admin, org, roles=roles), 201)["data"]
    attributes = created["attributes"]
    assert attributes["status"] == "pending" and attributes["invited_by_id"] == admin_account.id
    assert attributes["roles"] == [{"name": "editor", "scopes": {"organization": [org.id]}},
                                   {"name": "viewer", "scopes": {}}]
    message = inbox.wait()
    assert message["To"] == "new@example.com" and "Acme" in message.get_payload(decode=True).decode()

    body = assert_jsonapi(accept(app, token_in(message), first_name="Ada", last_name="Lovelace"), 200)
    assert body["data"]["type"] == "account_sessions" and body["meta"]["refresh_token"]
    me = ApiClient(app.test_client(), body["meta"]["token"])
    account = assert_jsonapi(me.get("/accounts/me", {"included": "roles,person"}), 200)
    assert account["data"]["attributes"]["email"] == "new@example.com"
    assert account["data"]["attributes"]["organization_id"] == org.id
    included = {(item["type"], item["attributes"].get("name") or item["attributes"].get("first_name"))
                for item in account["included"]}
    assert included == {("account_roles", "editor"), ("account_roles", "viewer"), ("people", "Ada")}
    shown = assert_jsonapi(admin.get(f"/invitations/{created['id']}"), 200)["data"]["attributes"]
    assert shown["status"] == "accepted" and shown["account_id"] == int(account["data"]["id"])


def test_a_token_works_once(app, admin, org, inbox):
    invite(admin, org)
    token = token_in(inbox.wait())
    assert_jsonapi(accept(app, token), 200)
    assert error_of(accept(app, token), 400)["code"] == "invalid_token"


def test_resend_kills_the_old_token_and_renews_the_validity(app, admin, org, inbox):
    created = assert_jsonapi(invite(admin, org), 201)["data"]
    first = token_in(inbox.wait(1))
    resent = assert_jsonapi(admin.post(f"/invitations/{created['id']}/resend"), 200)["data"]["attributes"]
    second = token_in(inbox.wait(2))
    assert resent["expires_at"] >= created["attributes"]["expires_at"]
    assert error_of(accept(app, first), 400)["code"] == "invalid_token"
    assert_jsonapi(accept(app, second), 200)
    assert error_of(admin.post(f"/invitations/{created['id']}/resend"), 409)["code"] == "not_pending"


def test_a_revoked_invitation_cannot_be_accepted(app, admin, org, inbox):
    created = assert_jsonapi(invite(admin, org), 201)["data"]
    token = token_in(inbox.wait())
    assert admin.delete(f"/invitations/{created['id']}").status_code == 204
    assert assert_jsonapi(admin.get(f"/invitations/{created['id']}"), 200)["data"]["attributes"]["status"] == \
        "revoked"
    assert error_of(accept(app, token), 400)["code"] == "invalid_token"
    assert error_of(admin.delete(f"/invitations/{created['id']}"), 409)["code"] == "not_pending"


def test_an_expired_invitation_shows_expired_and_can_be_resent(app, admin, org, inbox):
    created = assert_jsonapi(invite(admin, org), 201)["data"]
    token = token_in(inbox.wait())
    with app.app_context():
        db.session.get(Invitation, int(created["id"])).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    listed = assert_jsonapi(admin.get("/invitations", {"filter[status]": "expired"}), 200)
    assert [i["id"] for i in listed["data"]] == [created["id"]]
    assert error_of(accept(app, token), 400)["code"] == "invalid_token"
    assert_jsonapi(admin.post(f"/invitations/{created['id']}/resend"), 200)
    assert_jsonapi(accept(app, token_in(inbox.wait(2))), 200)


def test_a_weak_password_does_not_use_up_the_invitation(app, admin, org, inbox):
    invite(admin, org)
    token = token_in(inbox.wait())
    assert error_of(accept(app, token, "password"), 422)["code"] == "weak_password"
    assert_jsonapi(accept(app, token), 200)


def test_no_invitation_for_an_existing_account_or_twice(admin, factory, org, inbox):
    factory.account(email="taken@example.com")
    assert error_of(invite(admin, org, "TAKEN@example.com"), 409)["source"]["pointer"] == "/data/attributes/email"
    assert_jsonapi(invite(admin, org, "once@example.com"), 201)
    assert error_of(invite(admin, org, "once@example.com"), 409)["code"] == "not_unique"


def test_concurrent_acceptance_creates_one_account(app, admin, org, inbox):
    invite(admin, org)
    token = token_in(inbox.wait())
    barrier, statuses = threading.Barrier(8), []

    def attempt():
        barrier.wait()
        statuses.append(accept(app, token).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [400] * 7
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)
                                 .where(Account.email == "new@example.com")) == 1


def test_who_may_invite_with_which_roles(app, factory, org, inbox):
    other = factory.organization(slug="other")
    in_org = {"organization": [org.id]}
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=org.id, roles=[{"name": "org_admin", "scopes": in_org}])))
    auditor = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=org.id, roles=[{"name": "auditor", "scopes": in_org}])))
    plain = ApiClient(app.test_client(), factory.token(factory.account()))
    assert_jsonapi(invite(org_admin, org, roles=[{"name": "auditor", "scopes": in_org}]), 201)
    error = error_of(invite(org_admin, org, "b@example.com", roles=[{"name": "ok", "scopes": in_org},
                                                                    {"name": "admin"}]), 403)
    assert error["source"]["pointer"] == "/data/attributes/roles/1"
    assert error_of(invite(org_admin, org, "c@example.com", roles=[{"name": "x", "scopes": {}}]), 403)
    assert error_of(invite(org_admin, other, "d@example.com"), 422)["code"] == "not_found"  # B does not exist for it
    assert error_of(invite(auditor, org, "e@example.com"), 403)["code"] == "forbidden"
    assert error_of(invite(plain, org, "f@example.com"), 403)["code"] == "forbidden"
    assert len(assert_jsonapi(auditor.get("/invitations"), 200)["data"]) == 1
    assert assert_jsonapi(plain.get("/invitations"), 200)["data"] == []


@pytest.mark.parametrize("roles, pointer", [
    ([{"name": "bad name!"}], "/data/attributes/roles"),
    ([{"name": "x", "scopes": {"galaxy": [1]}}], "/data/attributes/roles"),
    ("admin", "/data/attributes/roles"),
])
def test_invalid_roles_are_422(admin, org, roles, pointer):
    assert error_of(invite(admin, org, roles=roles), 422)["source"]["pointer"].startswith(pointer)


def test_failed_acceptances_are_rate_limited(app):
    app.config["IAM_INVITATION_RATE_LIMIT"] = "2 per minute"
    try:
        for _ in range(2):
            error_of(accept(app, "not-a-token"), 400)
        response = accept(app, "not-a-token")
        assert error_of(response, 429)["code"] == "rate_limited" and response.headers["Retry-After"]
    finally:
        app.config["IAM_INVITATION_RATE_LIMIT"] = "10 per 10 minutes"
