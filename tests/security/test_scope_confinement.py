"""Role scopes name rows that exist and stay inside the organization they were granted in.

The attack (issue 10, finding 1): an org_admin of A grants a member `ou_manager` of
`{"ou": [A's unit, 8, 9, ...]}` while units 8 and up do not exist yet; later an admin creates
unit 8 in organization B, and the member reads and edits B's people and accounts there,
up to taking over B's accounts. Every scope id must exist and be within the granter's
reach when granted, and at decision time a scope reaches only inside the organization it
was granted in, so no later row can widen an old grant.
"""
import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import Account, AccountRole, Group
from tests.helpers import ApiClient, assert_jsonapi, error_of, ids


@pytest.fixture
def world(app, factory):
    a, b = factory.organization(slug="a"), factory.organization(slug="b")
    a_unit = factory.unit(a, "a_unit")
    member = factory.account(email="member@a.example", organization_id=a.id)
    org_admin = factory.account(email="boss@a.example", organization_id=a.id,
                                roles=[{"name": "org_admin", "scopes": {"organization": [a.id]}}])
    return dict(a=a, b=b, a_unit=a_unit, member=member,
                org_admin=ApiClient(app.test_client(), factory.token(org_admin)))


def _role(name, scopes, account_id):
    return {"data": {"type": "account_roles", "attributes": {"name": name, "account_id": account_id,
                                                               "scopes": scopes}}}


def test_a_grant_naming_units_that_do_not_exist_is_refused_everywhere(world):
    """The grant of the attack, through each door that hands out roles: nothing is stored."""
    a, a_unit, org_admin = world["a"], world["a_unit"], world["org_admin"]
    future = [a_unit.id + n for n in range(1, 6)]
    scopes = {"ou": [a_unit.id, *future]}
    error = error_of(org_admin.post("/account_roles", _role("ou_manager", scopes, world["member"].id)), 422)
    assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/attributes/scopes/ou"
    assert all(str(i) in error["detail"] for i in future)
    # Inline in the roles relationship of the account.
    error = error_of(org_admin.post(f"/accounts/{world['member'].id}/relationships/roles", {"data": [
        {"type": "account_roles", "attributes": {"name": "ou_manager", "scopes": scopes}}]}), 422)
    assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/0/attributes/scopes/ou"
    # Roles an invitation or a group hands out.
    roles = [{"name": "viewer", "scopes": {}}, {"name": "ou_manager", "scopes": scopes}]
    invitation = {"data": {"type": "invitations", "attributes": {"email": "new@a.example", "organization_id": a.id,
                                                                 "roles": roles[1:]}}}
    error = error_of(org_admin.post("/invitations", invitation), 422)
    assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/attributes/roles/0/scopes/ou"
    group = {"data": {"type": "groups", "attributes": {"name": "g", "organization_id": a.id,
                                                       "roles": [{"name": "ou_manager", "scopes": scopes}]}}}
    error = error_of(org_admin.post("/groups", group), 422)
    assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/attributes/roles/0/scopes/ou"
    assert ids(assert_jsonapi(org_admin.get("/groups"), 200)) == []
    assert ids(assert_jsonapi(org_admin.get("/invitations"), 200)) == []
    assert ids(assert_jsonapi(org_admin.get("/account_roles", {"filter[name]": "ou_manager"}), 200)) == []


def test_organization_ids_must_exist_too_even_for_a_global_admin(admin, world):
    a = world["a"]
    missing = a.id + 1000
    error = error_of(admin.post("/account_roles", _role("org_admin", {"organization": [a.id, missing]},
                                                        world["member"].id)), 422)
    assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/attributes/scopes/organization"
    assert str(missing) in error["detail"]
    error = error_of(admin.post("/account_roles", _role("ou_manager", {"ou": [world["a_unit"].id + 1000]},
                                                        world["member"].id)), 422)
    assert error["source"]["pointer"] == "/data/attributes/scopes/ou"
    # Project ids are the applications' own data: kept as given (only global admins grant them).
    assert_jsonapi(admin.post("/account_roles", _role("developer", {"project": [7]}, world["member"].id)), 201)


def test_one_roles_units_belong_to_one_organization(admin, factory, world):
    b_unit = factory.unit(world["b"], "b_unit")
    error = error_of(admin.post("/account_roles", _role("ou_manager", {"ou": [world["a_unit"].id, b_unit.id]},
                                                        world["member"].id)), 422)
    assert error["source"]["pointer"] == "/data/attributes/scopes/ou" and "one organization" in error["detail"]
    data = assert_jsonapi(admin.post("/account_roles", _role("ou_manager", {"ou": [b_unit.id]},
                                                             world["member"].id)), 201)["data"]
    assert data["attributes"]["scope_organization_id"] == world["b"].id


def test_groups_and_invitations_hand_out_roles_of_their_own_organization_only(admin, factory, world):
    a, b = world["a"], world["b"]
    b_unit = factory.unit(b, "b_unit")
    for scopes, pointer in [({"organization": [b.id]}, "organization"), ({"ou": [b_unit.id]}, "ou"),
                            ({"organization": [a.id, b.id]}, "organization")]:
        group = {"data": {"type": "groups", "attributes": {"name": "g", "organization_id": a.id,
                                                           "roles": [{"name": "org_admin", "scopes": scopes}]}}}
        error = error_of(admin.post("/groups", group), 422)
        assert error["source"]["pointer"] == f"/data/attributes/roles/0/scopes/{pointer}", scopes
        invitation = {"data": {"type": "invitations", "attributes": {
            "email": "new@a.example", "organization_id": a.id, "roles": [{"name": "org_admin", "scopes": scopes}]}}}
        error = error_of(admin.post("/invitations", invitation), 422)
        assert error["source"]["pointer"] == f"/data/attributes/roles/0/scopes/{pointer}", scopes


def _take_over_attempt(admin, world):
    """An admin creates units in B until one takes an id the member's old grant names, puts a
    person and an account there; returns what the member can see and do with them."""
    b = world["b"]
    units = [assert_jsonapi(admin.post("/organizational_units", {"data": {"type": "organizational_units",
             "attributes": {"organization_id": b.id, "name": f"b{n}"}}}), 201)["data"]["id"] for n in range(5)]
    person = assert_jsonapi(admin.post("/people", {"data": {"type": "people", "attributes": {
        "organization_id": b.id, "first_name": "Bea", "organizational_unit_id": int(units[0])}}}), 201)["data"]
    account = assert_jsonapi(admin.post("/accounts", {"data": {"type": "accounts", "attributes": {
        "email": "bea@b.example", "organization_id": b.id, "person_id": int(person["id"])}}}), 201)["data"]
    return units, person["id"], account["id"]


def test_an_old_grant_naming_ids_that_did_not_exist_never_reaches_another_organization(app, factory, admin, world):
    """The grant of the attack, stored before the fix (or by any other writer): the ids it names
    that come to exist later in organization B stay out of its reach."""
    a_unit = world["a_unit"]
    with app.app_context():
        role = AccountRole(account_id=world["member"].id, name="ou_manager", info={},
                           scopes={"ou": [a_unit.id, *range(a_unit.id + 1, a_unit.id + 40)]})
        db.session.add(role)
        db.session.commit()
        assert role.scope_organization_id == world["a"].id  # granted in A, where its only real unit was
    member = ApiClient(app.test_client(), factory.token(world["member"]))
    units, person_id, account_id = _take_over_attempt(admin, world)
    assert {int(u) for u in units} & set(range(a_unit.id, a_unit.id + 40)), "the test needs a unit id the grant names"
    assert error_of(member.get(f"/people/{person_id}"), 404)["code"] == "not_found"
    assert error_of(member.get(f"/accounts/{account_id}"), 404)["code"] == "not_found"
    assert error_of(member.patch(f"/accounts/{account_id}", {"data": {"type": "accounts", "id": account_id,
                    "attributes": {"email": "member+evil@a.example"}}}), 404)["code"] == "not_found"
    assert error_of(member.post(f"/accounts/{account_id}/password_reset"), 404)["code"] == "not_found"
    for unit in units:
        assert error_of(member.get(f"/organizational_units/{unit}"), 404)["code"] == "not_found"
    assert error_of(member.get(f"/organizations/{world['b'].id}"), 404)["code"] == "not_found"
    assert ids(assert_jsonapi(member.get("/people"), 200)) == []
    listed = assert_jsonapi(member.get("/accounts", {"count": "true"}), 200)
    assert ids(listed) == [world["member"].id] and listed["meta"]["count"] == 1
    assert ids(assert_jsonapi(member.get("/organizational_units"), 200)) == [a_unit.id]
    with app.app_context():
        assert db.session.scalar(select(Account.email).where(Account.id == int(account_id))) == "bea@b.example"


def test_a_unit_moved_to_another_organization_leaves_the_grant(app, factory, admin, world):
    a_unit = world["a_unit"]
    person = factory.person(world["a"], first_name="Ann", organizational_unit_id=a_unit.id)
    factory.role(world["member"], "ou_manager", scopes={"ou": [a_unit.id]})
    member = ApiClient(app.test_client(), factory.token(world["member"]))
    assert_jsonapi(member.get(f"/people/{person.id}"), 200)
    with app.app_context():  # the unit and its people now belong to B (as a data repair might do)
        from iam.models import OrganizationalUnit, Person
        db.session.get(OrganizationalUnit, a_unit.id).organization_id = world["b"].id
        db.session.get(Person, person.id).organization_id = world["b"].id
        db.session.commit()
    assert error_of(member.get(f"/people/{person.id}"), 404)["code"] == "not_found"
    assert error_of(member.get(f"/organizational_units/{a_unit.id}"), 404)["code"] == "not_found"


def test_a_groups_roles_reach_inside_its_organization_only(app, factory, world):
    """A group of A whose stored roles name organization B (written before the checks, or by
    another writer) gives its members nothing in B."""
    a, b = world["a"], world["b"]
    b_person = factory.person(b, first_name="Bob")
    with app.app_context():
        group = Group(name="g", organization_id=a.id, roles=[{"name": "auditor", "scopes": {"organization": [b.id]}},
                                                             {"name": "org_admin", "scopes": {"organization": [b.id]}}])
        group.members.append(db.session.get(Account, world["member"].id))
        db.session.add(group)
        db.session.commit()
    member = ApiClient(app.test_client(), factory.token(world["member"]))
    assert error_of(member.get(f"/people/{b_person.id}"), 404)["code"] == "not_found"
    assert error_of(member.get(f"/organizations/{b.id}"), 404)["code"] == "not_found"
    assert error_of(member.post("/people", {"data": {"type": "people", "attributes": {
        "organization_id": b.id, "first_name": "X"}}}), 403)["code"] == "forbidden"  # no org_admin grant at all
    assert ids(assert_jsonapi(member.get("/organizations"), 200)) == [a.id]  # its own organization only
    assert ids(assert_jsonapi(member.get("/people"), 200)) == []


def test_an_ou_manager_cannot_edit_the_person_of_someone_holding_more_rights(app, factory, world):
    """Finding 2: the "holds rights beyond yours" rule protects the person as well as the account."""
    a, a_unit = world["a"], world["a_unit"]
    boss_person = factory.person(a, first_name="Boss", organizational_unit_id=a_unit.id)
    factory.account(email="boss2@a.example", organization_id=a.id, person_id=boss_person.id,
                    roles=[{"name": "org_admin", "scopes": {"organization": [a.id]}}])
    plain_person = factory.person(a, first_name="Pat", organizational_unit_id=a_unit.id)
    factory.account(email="pat@a.example", organization_id=a.id, person_id=plain_person.id)
    manager = factory.account(email="manager@a.example", organization_id=a.id,
                              roles=[{"name": "ou_manager", "scopes": {"ou": [a_unit.id]}}])
    client = ApiClient(app.test_client(), factory.token(manager))

    def patch(person, **attributes):
        return client.patch(f"/people/{person.id}", {"data": {"type": "people", "id": str(person.id),
                                                             "attributes": attributes}})

    for attributes in ({"first_name": "Mallory"}, {"secondary_email": "manager@a.example"},
                       {"contact_number": "+1 555 0100"}, {"picture_url": "https://evil.example/p.png"}):
        error = error_of(patch(boss_person, **attributes), 403)
        assert error["code"] == "forbidden" and "beyond yours" in error["detail"], attributes
    assert assert_jsonapi(client.get(f"/people/{boss_person.id}"), 200)["data"]["attributes"]["first_name"] == "Boss"
    assert_jsonapi(patch(plain_person, first_name="Patricia"), 200)


def test_an_org_admin_cannot_end_the_sessions_or_revoke_the_keys_of_someone_holding_more_rights(app, factory,
                                                                                                 world):
    """The same rule for the account's credentials: an org_admin of A may end the sessions and
    revoke the keys of A's accounts, but not of an account of A that holds a global admin role."""
    from iam.models import ApiKey

    a = world["a"]
    boss = factory.account(email="root@a.example", organization_id=a.id, roles=["admin"])
    plain = world["member"]
    targets = {}
    for name, account in (("boss", boss), ("plain", plain)):
        session_id = factory.session(account)
        with app.app_context():
            key = ApiKey(account_id=account.id, name="script", prefix="IAM_xxxx", key_digest=f"{name:0>64}",
                         scopes={})
            db.session.add(key)
            db.session.commit()
            targets[name] = (session_id, key.id)
    org_admin = world["org_admin"]
    session_id, key_id = targets["boss"]
    assert "beyond yours" in error_of(org_admin.delete(f"/account_sessions/{session_id}"), 403)["detail"]
    assert "beyond yours" in error_of(org_admin.delete(f"/api_keys/{key_id}"), 403)["detail"]
    assert "beyond yours" in error_of(org_admin.post(f"/api_keys/{key_id}/revoke"), 403)["detail"]
    session_id, key_id = targets["plain"]
    assert org_admin.delete(f"/account_sessions/{session_id}").status_code == 204
    assert org_admin.delete(f"/api_keys/{key_id}").status_code == 204
