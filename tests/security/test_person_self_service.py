"""A person's own account manages its own person (contract sections 4 and 6, iam/auth/policy.py):
its names, picture_url, gender, birthday, secondary_email, contact_number and physical_address;
anything else of it is a 403, and deleting it too. Whatever roles the account holds, they never stop
this, and an org_admin or ou_manager keeps what its roles let it do."""
import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import AuditEvent, Person
from tests.helpers import ApiClient, assert_jsonapi, error_of

ALLOWED = [
    ("first_name", "Ada"), ("middle_name", "King"), ("last_name", "Lovelace"),
    ("picture_url", "https://pictures.example/ada.png"), ("gender", "female"), ("birthday", "1815-12-10"),
    ("secondary_email", "ada@home.example"), ("contact_number", "+44 20 7946 0000"),
    ("physical_address", "12 St James's Square, London"),
]


@pytest.fixture
def world(factory):
    a, b = factory.organization(slug="a"), factory.organization(slug="b")
    root = factory.unit(a, "root")
    child, other = factory.unit(a, "child", parent=root), factory.unit(a, "other")
    return dict(a=a, b=b, root=root, child=child, other=other)


def owner(app, factory, world, roles=(), unit="child", **person):
    """An account of A with its person (in `unit`), and a client logged in as it."""
    person = factory.person(world["a"], organizational_unit_id=world[unit].id if unit else None,
                            facets=["staff"], **person)
    account = factory.account(organization_id=world["a"].id, person_id=person.id, roles=roles)
    client = ApiClient(app.test_client(), factory.token(account))
    client.account, client.person = account, person
    return client


def patch(client, person_id, attributes=None, relationships=None, headers=None):
    data = {"type": "people", "id": str(person_id)}
    if attributes is not None:
        data["attributes"] = attributes
    if relationships is not None:
        data["relationships"] = relationships
    return client.patch(f"/people/{person_id}", {"data": data}, headers=headers)


def stored(app, person_id):
    with app.app_context():
        person = db.session.get(Person, person_id)
        db.session.expunge_all()
        return person


def events(app, **where):
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        return rows


@pytest.mark.parametrize("name, value", ALLOWED)
def test_the_owner_changes_each_self_service_attribute(app, factory, world, name, value):
    me = owner(app, factory, world)
    body = assert_jsonapi(patch(me, me.person.id, {name: value}), 200)
    assert body["data"]["attributes"][name] == value
    assert str(getattr(stored(app, me.person.id), name)) == value
    (event,) = events(app, action="update", resource_type="people", resource_id=str(me.person.id))
    assert event.actor_account_id == me.account.id and event.organization_id == world["a"].id
    assert event.changes["before"] == {name: None} and event.changes["after"] == {name: value}


def test_the_owner_changes_them_all_at_once_and_may_clear_them(app, factory, world):
    me = owner(app, factory, world, first_name="Old")
    attributes = assert_jsonapi(patch(me, me.person.id, dict(ALLOWED)), 200)["data"]["attributes"]
    assert {name: attributes[name] for name, _ in ALLOWED} == dict(ALLOWED)
    cleared = assert_jsonapi(patch(me, me.person.id, {"first_name": None, "birthday": None}), 200)
    assert cleared["data"]["attributes"]["first_name"] is None and stored(app, me.person.id).birthday is None


@pytest.mark.parametrize("attributes, pointer", [
    ({"facets": ["admin"]}, "/data/attributes/facets"),
    ({"organizational_unit_id": "root"}, "/data/attributes/organizational_unit_id"),
    ({"organizational_unit_id": "child"}, "/data/attributes/organizational_unit_id"),  # even unchanged
    ({"organizational_unit_id": None}, "/data/attributes/organizational_unit_id"),
    ({"organization_id": "a"}, "/data/attributes/organization_id"),
])
def test_anything_else_of_its_person_is_a_403_with_its_pointer(app, factory, world, attributes, pointer):
    me = owner(app, factory, world)
    attributes = {k: (world[v].id if isinstance(v, str) else v) for k, v in attributes.items()}
    error = error_of(patch(me, me.person.id, {"first_name": "Eve", **attributes}), 403)
    assert error["code"] == "forbidden" and error["source"]["pointer"] == pointer
    person = stored(app, me.person.id)
    assert person.first_name is None and person.facets == ["staff"] and person.organizational_unit_id == \
        world["child"].id
    assert events(app, action="update", resource_type="people") == []


def test_every_forbidden_attribute_is_named(app, factory, world):
    me = owner(app, factory, world)
    response = patch(me, me.person.id, {"facets": [], "organizational_unit_id": None, "last_name": "X"})
    assert response.status_code == 403
    assert {e["source"]["pointer"] for e in assert_jsonapi(response)["errors"]} == {
        "/data/attributes/facets", "/data/attributes/organizational_unit_id"}


def test_relationships_of_its_person_are_a_403(app, factory, world):
    me = owner(app, factory, world)
    unit = {"data": {"type": "organizational_units", "id": str(world["child"].id)}}
    error = error_of(patch(me, me.person.id, relationships={"organizational_unit": unit}), 403)
    assert error["source"]["pointer"] == "/data/relationships/organizational_unit/data"
    error = error_of(me.patch(f"/people/{me.person.id}/relationships/organizational_unit", {"data": None}), 403)
    assert error["code"] == "forbidden"
    assert stored(app, me.person.id).organizational_unit_id == world["child"].id


def test_the_owner_may_not_delete_its_person(app, factory, world):
    me = owner(app, factory, world)
    assert error_of(me.delete(f"/people/{me.person.id}"), 403)["code"] == "forbidden"
    assert stored(app, me.person.id) is not None


def test_someone_elses_person_stays_out_of_reach(app, factory, world):
    me, other = owner(app, factory, world), owner(app, factory, world)
    assert error_of(patch(me, other.person.id, {"first_name": "Eve"}), 404)["code"] == "not_found"
    assert error_of(me.delete(f"/people/{other.person.id}"), 404)
    loose = factory.person(world["a"], first_name="Loose")  # a person without an account
    assert error_of(patch(me, loose.id, {"first_name": "Eve"}), 404)
    assert stored(app, other.person.id).first_name is None and stored(app, loose.id).first_name == "Loose"


def test_if_match_holds_for_self_service_too(app, factory, world):
    me = owner(app, factory, world)
    etag = me.get(f"/people/{me.person.id}").headers["ETag"]
    assert_jsonapi(patch(me, me.person.id, {"gender": "x"}, headers={"If-Match": etag}), 200)
    error = error_of(patch(me, me.person.id, {"gender": "y"}, headers={"If-Match": etag}), 412)
    assert error["code"] == "precondition_failed" and stored(app, me.person.id).gender == "x"


def test_a_read_only_key_still_may_not_write(app, factory, world):
    me = owner(app, factory, world)
    created = me.post("/api_keys", {"data": {"type": "api_keys", "attributes": {
        "name": "script", "scopes": {"read_only": True}}}})
    raw = assert_jsonapi(created, 201)["meta"]["key"]
    token = assert_jsonapi(ApiClient(app.test_client()).post("/auth/api/login", {"key": raw}), 200)["meta"]["token"]
    script = ApiClient(app.test_client(), token)
    assert_jsonapi(script.get(f"/people/{me.person.id}"), 200)
    assert error_of(patch(script, me.person.id, {"first_name": "Eve"}), 403)["code"] == "forbidden"
    assert stored(app, me.person.id).first_name is None


@pytest.mark.parametrize("roles", [
    pytest.param(lambda w: [{"name": "org_admin", "scopes": {"organization": [w["a"].id]}}], id="org_admin"),
    # Rights beyond what it could grant (an auditor of B): the reach rule must not stop the owner.
    pytest.param(lambda w: [{"name": "org_admin", "scopes": {"organization": [w["a"].id]}},
                            {"name": "auditor", "scopes": {"organization": [w["b"].id]}}], id="org_admin+auditor_b"),
    pytest.param(lambda w: [{"name": "org_admin", "scopes": {"organization": [w["b"].id]}}], id="org_admin_of_b"),
    pytest.param(lambda w: [{"name": "ou_manager", "scopes": {"ou": [w["root"].id]},
                             "scope_organization_id": w["a"].id}], id="ou_manager"),
    pytest.param(lambda w: [{"name": "auditor", "scopes": {"organization": [w["a"].id]}}], id="auditor"),
    pytest.param(lambda w: [{"name": "admin", "scopes": {}}], id="admin"),
])
def test_whatever_its_roles_the_owner_edits_its_own_person(app, factory, world, roles):
    me = owner(app, factory, world, roles=roles(world))
    assert assert_jsonapi(patch(me, me.person.id, {"last_name": "Mine"}), 200)["data"]["attributes"][
        "last_name"] == "Mine"
    (event,) = events(app, action="update", resource_type="people", resource_id=str(me.person.id))
    assert event.actor_account_id == me.account.id


def test_an_org_admin_keeps_its_rights_over_its_own_person(app, factory, world):
    me = owner(app, factory, world, roles=[{"name": "org_admin", "scopes": {"organization": [world["a"].id]}}])
    moved = patch(me, me.person.id, {"organizational_unit_id": world["other"].id, "facets": ["lead"]})
    assert assert_jsonapi(moved, 200)["data"]["attributes"]["facets"] == ["lead"]
    assert stored(app, me.person.id).organizational_unit_id == world["other"].id


def test_rights_beyond_reach_leave_only_self_service(app, factory, world):
    """An org_admin of A that is also auditor of B may not change the rest of its own person (it could not
    change such a person of anyone else), nor delete it; an org_admin of B reaches nothing of A."""
    for roles in ([{"name": "org_admin", "scopes": {"organization": [world["a"].id]}},
                   {"name": "auditor", "scopes": {"organization": [world["b"].id]}}],
                  [{"name": "org_admin", "scopes": {"organization": [world["b"].id]}}]):
        me = owner(app, factory, world, roles=roles)
        error = error_of(patch(me, me.person.id, {"facets": ["lead"]}), 403)
        assert error["source"]["pointer"] == "/data/attributes/facets"
        assert error_of(me.delete(f"/people/{me.person.id}"), 403)["code"] == "forbidden"


def test_an_ou_manager_keeps_its_rights_over_others_and_only_self_service_over_itself(app, factory, world):
    manager = [{"name": "ou_manager", "scopes": {"ou": [world["root"].id]}, "scope_organization_id": world["a"].id}]
    me, them = owner(app, factory, world, roles=manager), owner(app, factory, world)
    assert_jsonapi(patch(me, them.person.id, {"organizational_unit_id": world["root"].id, "facets": ["x"]}), 200)
    # Its own account holds rights it could not grant: its own person, self-service only.
    assert error_of(patch(me, me.person.id, {"organizational_unit_id": world["root"].id}), 403)["source"][
        "pointer"] == "/data/attributes/organizational_unit_id"
    assert_jsonapi(patch(me, me.person.id, {"first_name": "Manager"}), 200)
    assert error_of(me.delete(f"/people/{me.person.id}"), 403)
