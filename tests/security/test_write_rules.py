"""Field-level write rules: what each grant may write, and where ids in bodies may point."""
import pytest

from tests.helpers import ApiClient, assert_jsonapi, error_of


@pytest.fixture
def world(app, factory):
    a, b = factory.organization(slug="a"), factory.organization(slug="b")
    a_root, b_root = factory.unit(a, "a_root"), factory.unit(b, "b_root")
    a_child, a_other = factory.unit(a, "a_child", parent=a_root), factory.unit(a, "a_other")
    person = factory.person(a, first_name="Ada", organizational_unit_id=a_child.id)
    account = factory.account(email="ada@a.example", organization_id=a.id, person_id=person.id)
    b_person = factory.person(b, first_name="Bob", organizational_unit_id=b_root.id)
    return dict(a=a, b=b, a_root=a_root, a_child=a_child, a_other=a_other, b_root=b_root, person=person,
                account=account, b_person=b_person)


def principal(app, factory, world, name, scopes):
    account = factory.account(email=f"{name}@a.example", organization_id=world["a"].id,
                              roles=[{"name": name, "scopes": scopes}])
    return ApiClient(app.test_client(), factory.token(account))


@pytest.fixture
def org_admin(app, factory, world):
    return principal(app, factory, world, "org_admin", {"organization": [world["a"].id]})


@pytest.fixture
def ou_manager(app, factory, world):
    return principal(app, factory, world, "ou_manager", {"ou": [world["a_root"].id]})


@pytest.fixture
def auditor(app, factory, world):
    return principal(app, factory, world, "auditor", {"organization": [world["a"].id]})


def grant(client, account, name, scopes):
    return client.post("/account_roles", {"data": {"type": "account_roles", "attributes": {
        "name": name, "account_id": account.id, "scopes": scopes}}})


def patch(client, type_, obj, **attributes):
    return client.patch(f"/{type_}/{obj.id}", {"data": {"type": type_, "id": str(obj.id), "attributes": attributes}})


def test_org_admin_grants_roles_inside_its_organization_only(org_admin, world):
    a, b, account = world["a"], world["b"], world["account"]
    assert_jsonapi(grant(org_admin, account, "org_admin", {"organization": [a.id]}), 201)
    assert_jsonapi(grant(org_admin, account, "editor", {"ou": [world["a_child"].id]}), 201)
    for name, scopes, pointer in [
        ("admin", {"organization": [a.id]}, "/data/attributes/name"),
        ("editor", {}, "/data/attributes/scopes"),
        ("editor", {"project": [1]}, "/data/attributes/scopes"),
    ]:
        error = error_of(grant(org_admin, account, name, scopes), 403)
        assert error["code"] == "forbidden" and error["source"]["pointer"] == pointer, (name, scopes)
    # Organization B and its units do not exist for an org_admin of A (as any id of B in a body).
    for scopes, pointer in [
        ({"organization": [b.id]}, "/data/attributes/scopes/organization"),
        ({"organization": [a.id, b.id]}, "/data/attributes/scopes/organization"),
        ({"ou": [world["b_root"].id]}, "/data/attributes/scopes/ou"),
        ({"ou": [world["a_child"].id, world["b_root"].id]}, "/data/attributes/scopes/ou"),
    ]:
        error = error_of(grant(org_admin, account, "auditor", scopes), 422)
        assert error["code"] == "not_found" and error["source"]["pointer"] == pointer, scopes


def test_org_admin_cannot_change_or_remove_roles_beyond_its_reach(app, admin, org_admin, factory, world):
    role = factory.role(world["account"], "admin")
    assert error_of(patch(org_admin, "account_roles", role, info={"x": 1}), 403)["code"] == "forbidden"
    assert error_of(org_admin.delete(f"/account_roles/{role.id}"), 403)["code"] == "forbidden"
    assert_jsonapi(admin.get(f"/account_roles/{role.id}"), 200)  # still there
    mine = factory.role(world["account"], "editor", scopes={"organization": [world["a"].id]})
    assert error_of(patch(org_admin, "account_roles", mine, scopes={}), 403)["source"]["pointer"] == \
        "/data/attributes/scopes"
    assert org_admin.delete(f"/account_roles/{mine.id}").status_code == 204


def test_ids_in_bodies_must_be_within_reach(org_admin, world):
    b_org, b_person = world["b"], world["b_person"]
    body = {"data": {"type": "people", "attributes": {"organization_id": b_org.id, "first_name": "X"}}}
    # Organization B does not exist for an org_admin of A: no such id.
    assert error_of(org_admin.post("/people", body), 422)["source"]["pointer"] == "/data/attributes/organization_id"
    error = error_of(patch(org_admin, "people", world["person"], organization_id=b_org.id), 422)
    assert error["code"] == "not_found"
    account = {"data": {"type": "accounts", "attributes": {"email": "x@a.example", "organization_id": world["a"].id,
                                                           "person_id": b_person.id}}}
    assert error_of(org_admin.post("/accounts", account), 422)["source"]["pointer"] == "/data/attributes/person_id"


def test_ou_manager_updates_inside_its_units_only(ou_manager, world):
    assert_jsonapi(patch(ou_manager, "people", world["person"], last_name="Lovelace"), 200)
    assert_jsonapi(patch(ou_manager, "people", world["person"], organizational_unit_id=world["a_root"].id), 200)
    # a_other is outside its subtree: invisible, so no such unit.
    error = error_of(patch(ou_manager, "people", world["person"], organizational_unit_id=world["a_other"].id), 422)
    assert error["code"] == "not_found"
    assert error_of(patch(ou_manager, "accounts", world["account"], organization_id=world["b"].id), 422)
    assert_jsonapi(patch(ou_manager, "accounts", world["account"], enabled=False), 200)
    body = {"data": {"type": "people", "attributes": {"organization_id": world["a"].id}}}
    assert error_of(ou_manager.post("/people", body), 403)["code"] == "forbidden"
    assert error_of(ou_manager.delete(f"/people/{world['person'].id}"), 403)["code"] == "forbidden"


def test_auditor_reads_but_never_writes(auditor, world):
    assert_jsonapi(auditor.get(f"/people/{world['person'].id}"), 200)
    assert error_of(patch(auditor, "people", world["person"], last_name="X"), 403)["code"] == "forbidden"
    assert error_of(auditor.delete(f"/accounts/{world['account'].id}"), 403)["code"] == "forbidden"
    assert error_of(grant(auditor, world["account"], "editor", {"organization": [world["a"].id]}), 403)


def test_self_service_goes_through_accounts_me(app, factory, world):
    account = world["account"]
    me = ApiClient(app.test_client(), factory.token(account))
    assert_jsonapi(me.get(f"/accounts/{account.id}"), 200)
    assert error_of(patch(me, "accounts", account, enabled=False), 403)["code"] == "forbidden"
    assert error_of(patch(me, "people", world["person"], facets=["x"]), 403)["code"] == "forbidden"
    assert_jsonapi(patch(me, "people", world["person"], first_name="Me"), 200)  # its own person: self-service
    body = {"data": {"type": "accounts", "attributes": {"first_name": "Me"}}}
    assert assert_jsonapi(me.patch("/accounts/me", body), 200)
    assert error_of(grant(me, account, "editor", {"organization": [world["a"].id]}), 403)


@pytest.mark.parametrize("holder_role", [
    {"name": "admin", "scopes": {}},
    {"name": "org_admin", "scopes": {"organization": ["B"]}},
    {"name": "auditor", "scopes": {"organization": ["B"]}},
])
def test_nobody_takes_over_an_account_with_more_rights_than_they_could_grant(app, admin, factory, world,
                                                                           org_admin, ou_manager, holder_role):
    """Changing a privileged account's email, then resetting its password, would hand over its rights."""
    scopes = {k: [world["b"].id] for k in holder_role["scopes"]}
    holder = factory.account(email="holder@a.example", organization_id=world["a"].id,
                             roles=[{"name": holder_role["name"], "scopes": scopes}])
    person = factory.person(world["a"], organizational_unit_id=world["a_child"].id)
    assert_jsonapi(patch(admin, "accounts", holder, person_id=person.id), 200)  # now in ou_manager's units
    for attacker in (org_admin, ou_manager):
        error = error_of(patch(attacker, "accounts", holder, email="attacker@evil.example"), 403)
        assert error["code"] == "forbidden"
        assert error_of(attacker.delete(f"/accounts/{holder.id}"), 403)["code"] == "forbidden"
    assert assert_jsonapi(admin.get(f"/accounts/{holder.id}"), 200)["data"]["attributes"]["email"] == \
        "holder@a.example"


def test_org_admin_still_manages_its_own_organizations_privileged_accounts(app, factory, world, org_admin, ou_manager):
    peer = factory.account(email="peer@a.example", organization_id=world["a"].id,
                           roles=[{"name": "auditor", "scopes": {"organization": [world["a"].id]}}])
    assert_jsonapi(patch(org_admin, "accounts", peer, enabled=False), 200)
    assert error_of(patch(ou_manager, "accounts", peer, enabled=True), 404)  # not in its units
