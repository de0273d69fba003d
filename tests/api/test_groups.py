"""groups: members managed through the relationship endpoint, and the roles members hold through them."""
import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import AuditEvent
from tests.helpers import ApiClient, assert_jsonapi, error_of


@pytest.fixture
def org(factory):
    return factory.organization(slug="a")


def create_group(client, org, name="editors", roles=None):
    return client.post("/groups", {"data": {"type": "groups", "attributes": {
        "name": name, "organization_id": org.id, "roles": roles if roles is not None else []}}})


def members(client, group_id, method, *accounts):
    return getattr(client, method)(f"/groups/{group_id}/relationships/members",
                                   {"data": [{"type": "accounts", "id": str(a.id)} for a in accounts]})


def member_ids(client, group_id):
    body = assert_jsonapi(client.get(f"/groups/{group_id}/relationships/members"), 200)
    return sorted(int(item["id"]) for item in body["data"])


def test_group_crud_and_names_unique_within_an_organization(admin, factory, org):
    group = assert_jsonapi(create_group(admin, org, roles=[{"name": "editor"}]), 201)["data"]
    assert group["attributes"]["roles"] == [{"name": "editor", "scopes": {}}]
    assert error_of(create_group(admin, org), 409)["source"]["pointer"] == "/data/attributes/name"
    assert_jsonapi(create_group(admin, factory.organization(slug="b")), 201)  # same name elsewhere
    patch = {"data": {"type": "groups", "id": group["id"], "attributes": {"description": "People who edit"}}}
    assert assert_jsonapi(admin.patch(f"/groups/{group['id']}", patch), 200)["data"]["attributes"][
        "description"] == "People who edit"
    assert error_of(create_group(admin, org, "x", roles=[{"name": "bad name!"}]), 422)
    assert admin.delete(f"/groups/{group['id']}").status_code == 204
    assert error_of(admin.get(f"/groups/{group['id']}"), 404)


def test_membership_is_added_removed_and_replaced_idempotently(app, admin, factory, org):
    ada, bob, cy = (factory.account(email=f"{n}@a.example", organization_id=org.id) for n in ("ada", "bob", "cy"))
    group_id = assert_jsonapi(create_group(admin, org), 201)["data"]["id"]
    assert members(admin, group_id, "post", ada, bob).status_code == 204
    assert members(admin, group_id, "post", ada).status_code == 204  # already there: no change, no error
    assert member_ids(admin, group_id) == [ada.id, bob.id]
    assert members(admin, group_id, "delete", bob, bob).status_code == 204
    assert members(admin, group_id, "delete", bob).status_code == 204
    assert member_ids(admin, group_id) == [ada.id]
    assert members(admin, group_id, "patch", bob, cy).status_code == 204
    assert member_ids(admin, group_id) == [bob.id, cy.id]
    listed = assert_jsonapi(admin.get(f"/groups/{group_id}/members", {"sort": "-id"}), 200)
    assert [int(a["id"]) for a in listed["data"]] == [cy.id, bob.id]
    with app.app_context():
        changes = [e.changes for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource_type == "groups", AuditEvent.action == "update")
            .order_by(AuditEvent.id))]
    assert changes[-1] == {"before": {"members": [ada.id]}, "after": {"members": [bob.id, cy.id]}}


def test_members_must_exist_and_belong_to_the_groups_organization(admin, factory, org):
    group_id = assert_jsonapi(create_group(admin, org), 201)["data"]["id"]
    outsider = factory.account(email="out@b.example", organization_id=factory.organization(slug="b").id)
    assert error_of(members(admin, group_id, "post", outsider), 422)["source"]["pointer"] == "/data/0/id"
    body = {"data": [{"type": "accounts", "id": "999999"}]}
    assert error_of(admin.post(f"/groups/{group_id}/relationships/members", body), 422)["code"] == "not_found"
    body = {"data": [{"type": "people", "id": "1"}]}
    assert error_of(admin.post(f"/groups/{group_id}/relationships/members", body), 409)["code"] == "type_mismatch"


def test_members_hold_the_groups_roles_while_members(app, admin, factory, org):
    ada = factory.account(email="ada@a.example", organization_id=org.id)
    group_id = assert_jsonapi(create_group(admin, org, roles=[
        {"name": "org_admin", "scopes": {"organization": [org.id]}}]), 201)["data"]["id"]
    me = ApiClient(app.test_client(), factory.token(ada))
    person = {"data": {"type": "people", "attributes": {"organization_id": org.id, "first_name": "X"}}}
    assert error_of(me.post("/people", person), 403)
    assert members(admin, group_id, "post", ada).status_code == 204
    assert_jsonapi(me.post("/people", person), 201)  # the very next request has the group's rights
    found = assert_jsonapi(admin.get("/accounts", {"filter[role_name]": "org_admin"}), 200)
    assert [int(a["id"]) for a in found["data"]] == [ada.id]
    effective = assert_jsonapi(me.get("/accounts/me"), 200)["meta"]["effective_roles"]
    assert effective == [{"name": "org_admin", "scopes": {"organization": [org.id]}, "source": "group",
                          "group_id": group_id}]
    assert members(admin, group_id, "delete", ada).status_code == 204
    assert error_of(me.post("/people", person), 403)
    assert assert_jsonapi(admin.get("/accounts", {"filter[role_name]": "org_admin"}), 200)["data"] == []


def test_org_admins_manage_groups_within_their_reach(app, admin, factory, org):
    in_org = {"organization": [org.id]}
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        email="oa@a.example", organization_id=org.id, roles=[{"name": "org_admin", "scopes": in_org}])))
    ada = factory.account(email="ada@a.example", organization_id=org.id)
    mine = assert_jsonapi(create_group(org_admin, org, roles=[{"name": "auditor", "scopes": in_org}]), 201)["data"]
    assert members(org_admin, mine["id"], "post", ada).status_code == 204
    error = error_of(create_group(org_admin, org, "admins", roles=[{"name": "admin"}]), 403)
    assert error["source"]["pointer"] == "/data/attributes/roles/0"
    admins = assert_jsonapi(create_group(admin, org, "admins", roles=[{"name": "admin"}]), 201)["data"]
    # Putting someone in a group that carries admin would make them admin: beyond an org_admin.
    assert error_of(members(org_admin, admins["id"], "post", ada), 403)["code"] == "forbidden"
    assert error_of(org_admin.delete(f"/groups/{admins['id']}"), 403)
    other = factory.organization(slug="b")
    assert error_of(create_group(org_admin, other), 422)["code"] == "not_found"


def test_an_account_holding_admin_through_a_group_cannot_be_taken_over(app, admin, factory, org):
    in_org = {"organization": [org.id]}
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        email="oa@a.example", organization_id=org.id, roles=[{"name": "org_admin", "scopes": in_org}])))
    boss = factory.account(email="boss@a.example", organization_id=org.id)
    admins = assert_jsonapi(create_group(admin, org, "admins", roles=[{"name": "admin"}]), 201)["data"]
    assert members(admin, admins["id"], "post", boss).status_code == 204
    patch = {"data": {"type": "accounts", "id": str(boss.id), "attributes": {"email": "mine@evil.example"}}}
    assert error_of(org_admin.patch(f"/accounts/{boss.id}", patch), 403)["code"] == "forbidden"


def test_accounts_include_their_groups_and_people_see_their_own(app, admin, factory, org):
    ada = factory.account(email="ada@a.example", organization_id=org.id)
    group_id = assert_jsonapi(create_group(admin, org), 201)["data"]["id"]
    assert_jsonapi(create_group(admin, org, "others"), 201)
    members(admin, group_id, "post", ada)
    body = assert_jsonapi(admin.get(f"/accounts/{ada.id}", {"included": "groups"}), 200)
    assert [g["id"] for g in body["included"]] == [group_id]
    me = ApiClient(app.test_client(), factory.token(ada))
    assert [g["id"] for g in assert_jsonapi(me.get("/groups"), 200)["data"]] == [group_id]


def test_a_membership_change_costs_the_same_for_1_or_30_accounts(admin, factory, org, count_queries):
    accounts = [factory.account(email=f"m{n}@a.example", organization_id=org.id) for n in range(31)]
    one, many = (assert_jsonapi(create_group(admin, org, name), 201)["data"]["id"] for name in ("one", "many"))
    with count_queries() as single:
        assert members(admin, one, "post", accounts[0]).status_code == 204
    with count_queries() as thirty:
        assert members(admin, many, "post", *accounts[1:]).status_code == 204
    assert member_ids(admin, many) == sorted(a.id for a in accounts[1:])
    # Reads are fixed whatever the number of accounts; only the membership rows themselves grow.
    reads = [[s for s in batch if s.lstrip().upper().startswith("SELECT")] for batch in (single, thirty)]
    assert len(reads[0]) == len(reads[1]), (reads[0], reads[1])
