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


# ------------------------------------------------------------------ PATCH /invitations/:id (roles)

def change_roles(client, invitation_id, roles, headers=None, **attributes):
    body = {"data": {"type": "invitations", "id": str(invitation_id),
                     "attributes": {**({"roles": roles} if roles is not None else {}), **attributes}}}
    return client.patch(f"/invitations/{invitation_id}", body, headers=headers)


def invitation_events(app, invitation_id):
    from iam.models import AuditEvent
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(
            AuditEvent.resource_type == "invitations", AuditEvent.resource_id == str(invitation_id),
            AuditEvent.action == "update")).all()
        db.session.expunge_all()
        return rows


def test_patch_changes_the_roles_of_a_pending_invitation_and_acceptance_grants_them(app, admin, admin_account,
                                                                                    org, inbox):
    invitation_id = assert_jsonapi(invite(admin, org, roles=[{"name": "viewer"}]), 201)["data"]["id"]
    token = token_in(inbox.wait())
    etag = admin.get(f"/invitations/{invitation_id}").headers["ETag"]
    roles = [{"name": "editor", "scopes": {"organization": [org.id]}}]
    changed = change_roles(admin, invitation_id, roles, headers={"If-Match": etag})
    assert assert_jsonapi(changed, 200)["data"]["attributes"]["roles"] == roles
    assert changed.headers["ETag"] != etag
    # The ETag it had is stale now.
    assert error_of(change_roles(admin, invitation_id, [], headers={"If-Match": etag}), 412)
    (event,) = invitation_events(app, invitation_id)
    assert event.actor_account_id == admin_account.id and event.organization_id == org.id
    assert event.changes == {"before": {"roles": [{"name": "viewer", "scopes": {}}]}, "after": {"roles": roles}}
    assert len(inbox.messages) == 1  # changing the roles mails nothing; the token still works

    session = assert_jsonapi(accept(app, token), 200)["meta"]["token"]
    me = ApiClient(app.test_client(), session)
    granted = assert_jsonapi(me.get("/accounts/me", {"included": "roles"}), 200)["included"]
    assert [(r["attributes"]["name"], r["attributes"]["scopes"]) for r in granted] == [
        ("editor", {"organization": [org.id]})]


@pytest.mark.parametrize("how", ["accepted", "revoked", "expired"])
def test_patch_refuses_an_invitation_that_is_not_pending(app, admin, org, inbox, how):
    invitation_id = assert_jsonapi(invite(admin, org), 201)["data"]["id"]
    token = token_in(inbox.wait())
    if how == "accepted":
        assert_jsonapi(accept(app, token), 200)
    elif how == "revoked":
        assert admin.delete(f"/invitations/{invitation_id}").status_code == 204
    else:
        with app.app_context():
            db.session.get(Invitation, int(invitation_id)).expires_at = utcnow() - timedelta(seconds=1)
            db.session.commit()
    error = error_of(change_roles(admin, invitation_id, [{"name": "editor"}]), 409)
    assert error["code"] == "not_pending"
    assert assert_jsonapi(admin.get(f"/invitations/{invitation_id}"), 200)["data"]["attributes"]["roles"] == []


@pytest.mark.parametrize("attributes", [{"email": "other@example.com"}, {"organization_id": "other"},
                                        {"status": "accepted"}, {"expires_at": "2100-01-01T00:00:00Z"}])
def test_patch_changes_nothing_but_roles(admin, factory, org, inbox, attributes):
    invitation_id = assert_jsonapi(invite(admin, org), 201)["data"]["id"]
    if attributes.get("organization_id") == "other":
        attributes = {"organization_id": factory.organization(slug="elsewhere").id}
    error = error_of(change_roles(admin, invitation_id, [{"name": "editor"}], **attributes), 422)
    assert error["code"] == "read_only" and error["source"]["pointer"] == f"/data/attributes/{next(iter(attributes))}"
    shown = assert_jsonapi(admin.get(f"/invitations/{invitation_id}"), 200)["data"]["attributes"]
    assert shown["email"] == "new@example.com" and shown["organization_id"] == org.id and shown["roles"] == []


def test_who_may_change_an_invitations_roles_and_to_what(app, factory, org, inbox):
    other = factory.organization(slug="other")
    other_unit = factory.unit(other, "elsewhere")
    in_org = {"organization": [org.id]}
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=org.id, roles=[{"name": "org_admin", "scopes": in_org}])))
    auditor = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=org.id, roles=[{"name": "auditor", "scopes": in_org}])))
    plain = ApiClient(app.test_client(), factory.token(factory.account(organization_id=org.id)))
    invitation_id = assert_jsonapi(invite(org_admin, org, roles=[{"name": "viewer", "scopes": in_org}]), 201)[
        "data"]["id"]
    # Beyond its reach: admin, a global scope, another organization it does not administer (403) ...
    for roles, pointer in [([{"name": "ok", "scopes": in_org}, {"name": "admin"}], "/data/attributes/roles/1"),
                           ([{"name": "x", "scopes": {}}], "/data/attributes/roles/0"),
                           ([{"name": "x", "scopes": {"project": [1]}}], "/data/attributes/roles/0")]:
        error = error_of(change_roles(org_admin, invitation_id, roles), 403)
        assert error["code"] == "forbidden" and error["source"]["pointer"] == pointer, roles
    # ... rows of another organization (422), even for a global admin, who sees them.
    admin = ApiClient(app.test_client(), factory.token(factory.account(roles=["admin"])))
    for client in (org_admin, admin):
        for scopes, pointer in [({"organization": [other.id]}, "/data/attributes/roles/0/scopes/organization"),
                                ({"ou": [other_unit.id]}, "/data/attributes/roles/0/scopes/ou")]:
            error = error_of(change_roles(client, invitation_id, [{"name": "x", "scopes": scopes}]), 422)
            assert error["source"]["pointer"] == pointer, scopes
    assert error_of(change_roles(auditor, invitation_id, []), 403)["code"] == "forbidden"
    assert error_of(change_roles(plain, invitation_id, []), 404)["code"] == "not_found"
    assert assert_jsonapi(admin.get(f"/invitations/{invitation_id}"), 200)["data"]["attributes"]["roles"] == [
        {"name": "viewer", "scopes": in_org}]
    assert invitation_events(app, invitation_id) == []
    unit = factory.unit(org, "sales")
    roles = [{"name": "auditor", "scopes": in_org}, {"name": "ou_manager", "scopes": {"ou": [unit.id]}}]
    assert assert_jsonapi(change_roles(org_admin, invitation_id, roles), 200)["data"]["attributes"]["roles"] == roles
