"""The audit trail: every write through the API, with actor, target, before/after, secrets redacted."""
from sqlalchemy import select

from iam.extensions import db
from iam.models import AuditEvent
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of


def events(app, **where):
    with app.app_context():
        stmt = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        rows = db.session.scalars(stmt).all()
        db.session.expunge_all()
        return rows


def create_org(admin, **attributes):
    attributes = {"name": "Acme", "slug": "acme", **attributes}
    return assert_jsonapi(admin.post("/organizations", {"data": {"type": "organizations",
                                                                 "attributes": attributes}}), 201)["data"]


def test_create_update_delete_are_recorded_with_before_and_after(app, admin, admin_account):
    org = create_org(admin)
    patch = {"data": {"type": "organizations", "id": org["id"], "attributes": {"name": "Acme Inc"}}}
    assert_jsonapi(admin.patch(f"/organizations/{org['id']}", patch), 200)
    assert admin.delete(f"/organizations/{org['id']}").status_code == 204

    created, updated, deleted = events(app, resource_type="organizations")
    assert (created.action, updated.action, deleted.action) == ("create", "update", "delete")
    assert {e.actor_account_id for e in (created, updated, deleted)} == {admin_account.id}
    assert {e.resource_id for e in (created, updated, deleted)} == {org["id"]}
    assert created.changes["after"] == {"name": "Acme", "slug": "acme"}
    assert updated.changes == {"before": {"name": "Acme"}, "after": {"name": "Acme Inc"}}
    assert deleted.changes["before"]["slug"] == "acme" and deleted.changes["after"] is None
    assert created.ip == "127.0.0.1"


def test_secrets_never_reach_the_trail(app, admin):
    body = {"data": {"type": "accounts", "attributes": {"email": "new@example.com", "password": "a secret passphrase"}}}
    assert_jsonapi(admin.post("/accounts", body), 201)
    (event,) = events(app, resource_type="accounts", action="create")
    assert "a secret passphrase" not in str(event.changes)
    assert "argon2" not in str(event.changes)
    assert event.changes["after"]["email"] == "new@example.com"


def test_a_refused_write_leaves_no_event(app, admin):
    create_org(admin)
    body = {"data": {"type": "organizations", "attributes": {"name": "Dup", "slug": "acme"}}}
    assert error_of(admin.post("/organizations", body), 409)
    body["data"]["attributes"]["slug"] = "bad slug!"
    assert error_of(admin.post("/organizations", body), 422)
    assert [e.action for e in events(app, resource_type="organizations")] == ["create"]


def test_self_service_changes_are_recorded(app, user):
    body = {"data": {"type": "accounts", "attributes": {"preferences": {"theme": "dark"}}}}
    assert_jsonapi(user.patch("/accounts/me", body), 200)
    (event,) = events(app, resource_type="accounts", action="update")
    assert event.actor_account_id == user.account.id
    assert event.changes["after"] == {"preferences": {"theme": "dark"}}


def test_logins_and_failures_are_recorded(app, factory):
    account = factory.account(email="ada@example.com")
    client = ApiClient(app.test_client())
    error_of(client.post("/auth/login", {"email": "ada@example.com", "password": "wrong password"}), 401)
    assert_jsonapi(client.post("/auth/login", {"email": "ada@example.com", "password": PASSWORD}), 200)
    assert [(e.action, e.actor_account_id) for e in events(app)] == [("login_failed", account.id),
                                                                     ("login", account.id)]


def test_admins_read_the_trail_with_filters(app, admin):
    create_org(admin)
    create_org(admin, slug="globex", name="Globex")
    body = assert_jsonapi(admin.get("/audit_events", {"filter[action]": "create",
                                                      "filter[resource_type]": "organizations",
                                                      "sort": "-id", "count": "true"}), 200)
    assert body["meta"]["count"] == 2
    assert body["data"][0]["attributes"]["changes"]["after"]["slug"] == "globex"


def test_the_trail_is_read_only(app, admin):
    create_org(admin)
    event_id = events(app)[0].id
    assert error_of(admin.post("/audit_events", {"data": {"type": "audit_events"}}), 405)
    assert error_of(admin.patch(f"/audit_events/{event_id}", {"data": {"type": "audit_events",
                                                                        "id": str(event_id)}}), 405)
    assert error_of(admin.delete(f"/audit_events/{event_id}"), 405)


def test_plain_accounts_see_no_trail(app, admin, user):
    create_org(admin)
    event_id = events(app)[0].id
    assert assert_jsonapi(user.get("/audit_events", {"count": "true"}), 200)["meta"]["count"] == 0
    assert error_of(user.get(f"/audit_events/{event_id}"), 404)["code"] == "not_found"
