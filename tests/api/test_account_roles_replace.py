"""Replacing an account's roles in one request: PATCH /accounts/:id/relationships/roles."""
from sqlalchemy import select

from iam.extensions import db
from iam.models import AuditEvent
from tests.helpers import ApiClient, assert_jsonapi, error_of


def roles_of(client, account):
    body = assert_jsonapi(client.get(f"/accounts/{account.id}/roles"), 200)
    return sorted((r["attributes"]["name"], r["id"]) for r in body["data"])


def replace(client, account, items, method="patch"):
    return getattr(client, method)(f"/accounts/{account.id}/relationships/roles", {"data": items})


def new(name, scopes=None):
    return {"type": "account_roles", "attributes": {"name": name, "scopes": scopes or {}}}


def test_patch_keeps_listed_roles_adds_new_ones_and_removes_the_rest(app, admin, factory):
    account = factory.account(email="ada@example.com")
    keep = factory.role(account, "viewer")
    drop = factory.role(account, "editor")
    assert replace(admin, account, [{"type": "account_roles", "id": str(keep.id)}, new("auditor")]).status_code == 204
    roles = roles_of(admin, account)
    assert [name for name, _ in roles] == ["auditor", "viewer"]
    assert ("viewer", str(keep.id)) in roles and drop.name == "editor"
    with app.app_context():
        (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "accounts",
                                                               AuditEvent.action == "update")).all()
        assert event.changes == {"before": {"roles": ["editor", "viewer"]}, "after": {"roles": ["auditor", "viewer"]}}


def test_post_adds_and_delete_removes(admin, factory):
    account = factory.account(email="ada@example.com")
    assert replace(admin, account, [new("viewer"), new("editor")], "post").status_code == 204
    (editor_id,) = [role_id for name, role_id in roles_of(admin, account) if name == "editor"]
    assert replace(admin, account, [{"type": "account_roles", "id": editor_id}], "delete").status_code == 204
    assert [name for name, _ in roles_of(admin, account)] == ["viewer"]


def test_an_empty_list_removes_every_role(admin, factory):
    account = factory.account(email="ada@example.com", roles=["viewer", "editor"])
    assert replace(admin, account, []).status_code == 204
    assert roles_of(admin, account) == []


def test_one_bad_item_changes_nothing(admin, factory):
    account = factory.account(email="ada@example.com")
    keep = factory.role(account, "viewer")
    error = error_of(replace(admin, account, [new("ok"), new("bad", {"galaxy": [1]})]), 422)
    assert error["source"]["pointer"] == "/data/1/attributes/scopes"
    assert roles_of(admin, account) == [("viewer", str(keep.id))]
    other = factory.account(email="other@example.com")
    foreign = factory.role(other, "viewer")
    error = error_of(replace(admin, account, [{"type": "account_roles", "id": str(foreign.id)}]), 422)
    assert error["source"]["pointer"] == "/data/0/id"
    assert error_of(replace(admin, account, [{"type": "people", "id": "1"}]), 409)["code"] == "type_mismatch"
    assert roles_of(admin, account) == [("viewer", str(keep.id))]


def test_an_org_admin_replaces_roles_within_its_reach_only(app, admin, factory):
    org = factory.organization()
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=org.id, roles=[{"name": "org_admin", "scopes": {"organization": [org.id]}}])))
    in_org = {"organization": [org.id]}
    account = factory.account(email="ada@example.com", organization_id=org.id)
    viewer = factory.role(account, "viewer", scopes=in_org)
    keep = {"type": "account_roles", "id": str(viewer.id)}
    error = error_of(replace(org_admin, account, [keep, new("org_admin", {})]), 403)
    assert error["source"]["pointer"] == "/data/1/attributes/scopes"
    assert error_of(replace(org_admin, account, [keep, new("admin", in_org)]), 403)["source"]["pointer"] == \
        "/data/1/attributes/name"
    assert replace(org_admin, account, [new("auditor", in_org)]).status_code == 204
    assert [name for name, _ in roles_of(admin, account)] == ["auditor"]
    # An account holding rights beyond the org_admin's cannot be touched at all.
    boss = factory.account(email="boss@example.com", organization_id=org.id, roles=["admin"])
    assert error_of(replace(org_admin, boss, [new("viewer", in_org)], "post"), 403)["code"] == "forbidden"
    assert [name for name, _ in roles_of(admin, boss)] == ["admin"]
