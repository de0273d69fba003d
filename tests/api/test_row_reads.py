"""Reads that only render load plain rows (iam/jsonapi/rows.py) instead of ORM objects.

The row path must answer exactly what the ORM path answers: the same attributes, the same
linkage, the same included resources in the same order, and the same visibility for callers
who see only part of the data. Each request here is made twice, once on each path, and the
two documents are compared whole.
"""
from datetime import timedelta

import pytest

from iam.extensions import db
from iam.jsonapi.rows import RowPlan
from iam.models import Account, AccountRole, AccountSession, ApiKey, Group, Invitation, Person, utcnow
from tests.helpers import ApiClient, assert_jsonapi

# Every includable path of every type, to depth two where the first hop leads to more.
PATHS = {
    "accounts": ["roles", "person", "organization", "groups", "roles,person,organization,groups",
                 "groups.organization", "person.organizational_unit", "person.organization", "roles.account"],
    "account_roles": ["account", "account.person", "account.groups", "account.roles"],
    "people": ["account", "organizational_unit", "organization", "account.roles", "organizational_unit.organization"],
    "groups": ["organization"],
    "organizational_units": ["organization", "parent", "children", "parent.organization"],
    "account_sessions": ["account", "account.person"],
    "api_keys": ["account", "account.organization"],
    "invitations": ["organization"],
    "organizations": [""],
    "settings": [""],
    "audit_events": [""],
}
SPARSE = [
    ("accounts", {"fields[accounts]": "email,enabled"}),
    ("accounts", {"fields[accounts]": "email,roles", "included": "roles", "fields[account_roles]": "name"}),
    ("accounts", {"fields[accounts]": "email", "included": "organization,person",
                  "fields[organizations]": "name,quota_remaining", "fields[people]": "birthday,facets"}),
    ("account_sessions", {"fields[account_sessions]": "status,account"}),
    ("organizations", {"fields[organizations]": "quota_remaining"}),
]


@pytest.fixture
def world(app, factory):
    """Two organizations with units, people, accounts, roles, groups, keys, sessions and an invitation."""
    now = utcnow()
    org_a = factory.organization(quota_limit=10, quota_usage=4)
    org_b = factory.organization()
    root = factory.unit(org_a, name="root")
    child = factory.unit(org_a, name="child", parent=root)
    other = factory.unit(org_b, name="elsewhere")
    with app.app_context():
        people = [Person(organization_id=org_a.id, organizational_unit_id=child.id, first_name="Ann",
                         birthday=now.date() - timedelta(days=9000), facets=["x", "y"]),
                  Person(organization_id=org_a.id, organizational_unit_id=root.id, first_name="Bo", facets=[]),
                  Person(organization_id=org_b.id, organizational_unit_id=other.id, first_name="Cy", facets=["z"])]
        db.session.add_all(people)
        db.session.flush()
        accounts = []
        for i, (person, org) in enumerate(zip(people, (org_a, org_a, org_b))):
            account = Account(email=f"member{i}@example.com", organization_id=org.id, person_id=person.id,
                              roles=[AccountRole(name="viewer", scopes={}, info={"n": i}),
                                     AccountRole(name="auditor", scopes={"organization": [org.id]}, info={},
                                                 expires_at=now + timedelta(days=i + 1))])
            accounts.append(account)
        accounts.append(Account(email="loner@example.com"))
        db.session.add_all(accounts)
        db.session.flush()
        group_a = Group(name="team-a", organization_id=org_a.id, roles=[{"name": "viewer", "scopes": {}}])
        group_b = Group(name="team-b", organization_id=org_b.id, roles=[])
        group_a.members = [accounts[0], accounts[1], accounts[2]]
        group_b.members = [accounts[2], accounts[0]]
        db.session.add_all([group_a, group_b])
        db.session.add(ApiKey(account_id=accounts[0].id, name="ops", prefix="abcd1234", key_digest="x" * 64,
                              scopes={"read_only": True}, expires_at=now + timedelta(days=3)))
        db.session.add(AccountSession(account_id=accounts[1].id, expires_at=now - timedelta(hours=1),
                                      last_used_at=now - timedelta(hours=2)))
        db.session.add(Invitation(email="new@example.com", organization_id=org_a.id, roles=[{"name": "viewer"}],
                                  token_digest="y" * 64, expires_at=now + timedelta(days=7)))
        db.session.commit()
        ids = {"org_a": org_a.id, "root": root.id, "members": [a.id for a in accounts]}
    return ids


@pytest.fixture
def callers(app, factory, admin, world):
    """The admin, an org_admin and an auditor of the first organization, an ou_manager of its
    root unit, and a member with no rights beyond its own account."""
    def client(account):
        return ApiClient(app.test_client(), factory.token(account))

    org = {"organization": [world["org_a"]]}
    with app.app_context():
        member = db.session.get(Account, world["members"][1])
        db.session.expunge(member)
    return {
        "admin": admin,
        "org_admin": client(factory.account(roles=[{"name": "org_admin", "scopes": org}])),
        "auditor": client(factory.account(roles=[{"name": "auditor", "scopes": org}])),
        "ou_manager": client(factory.account(roles=[{"name": "ou_manager", "scopes": {"ou": [world["root"]]}}])),
        "member": client(member),
    }


def orm_only(monkeypatch):
    monkeypatch.setattr(RowPlan, "build", classmethod(lambda cls, *args, **kwargs: None))


def both_ways(monkeypatch, caller, path, params):
    """(row-path response, ORM-path response) for one GET."""
    rows = caller.get(path, params)
    with monkeypatch.context() as patch:
        orm_only(patch)
        orm = caller.get(path, params)
    return rows, orm


def assert_same(rows, orm):
    assert rows.status_code == orm.status_code
    assert rows.get_json() == orm.get_json()
    assert rows.headers.get("ETag") == orm.headers.get("ETag")


@pytest.mark.parametrize("who", ["admin", "org_admin", "auditor", "ou_manager", "member"])
def test_every_include_path_renders_as_the_orm_renders_it(monkeypatch, callers, who):
    caller = callers[who]
    compared = 0
    for type_name, paths in PATHS.items():
        for include in paths:
            params = {"page[size]": "100", **({"included": include} if include else {})}
            rows, orm = both_ways(monkeypatch, caller, f"/{type_name}", params)
            assert_same(rows, orm)
            body = rows.get_json()
            for item in body.get("data") or []:
                assert_same(*both_ways(monkeypatch, caller, f"/{type_name}/{item['id']}",
                                       {"included": include} if include else {}))
                compared += 1
    assert compared > 0
    assert_same(*both_ways(monkeypatch, caller, "/accounts/me", {"included": "roles,person,organization,groups"}))


@pytest.mark.parametrize("type_name, params", SPARSE)
def test_sparse_fieldsets_render_as_the_orm_renders_them(monkeypatch, callers, type_name, params):
    rows, orm = both_ways(monkeypatch, callers["admin"], f"/{type_name}", params)
    assert_same(rows, orm)
    assert assert_jsonapi(rows, 200)["data"]


def test_list_with_includes_reads_rows_not_orm_objects(app, callers, monkeypatch):
    """The accounts page with its usual includes is served by the row path."""
    wrapped = []
    original = RowPlan.wrap
    monkeypatch.setattr(RowPlan, "wrap", lambda self, rows: wrapped.append(self.resource.type) or original(self, rows))
    body = assert_jsonapi(callers["admin"].get("/accounts", {"included": "roles,person,organization,groups"}), 200)
    assert wrapped == ["accounts"]
    assert {item["type"] for item in body["included"]} == {"account_roles", "people", "organizations", "groups"}
    organization = next(i for i in body["included"] if i["type"] == "organizations" and i["attributes"]["quota_limit"])
    assert organization["attributes"]["quota_remaining"] == 6   # a hybrid property, computed in SQL


def test_include_sees_only_what_the_caller_may_see(callers, world):
    """An org_admin of the first organization includes the groups of a member of both
    organizations' groups: only its own organization's group comes back."""
    body = assert_jsonapi(callers["org_admin"].get(f"/accounts/{world['members'][0]}", {"included": "groups"}), 200)
    names = [item["attributes"]["name"] for item in body["included"]]
    assert names == ["team-a"]
    assert len(body["data"]["relationships"]["groups"]["data"]) == 1


def test_rendered_attributes_are_what_the_marshmallow_schemas_dump(app, world):
    """The renderer's two ways to build attributes (one step from the instance dict, or a
    getter per field) both give what each type's marshmallow-jsonapi schema dumps, once
    encoded (the fast way leaves timestamps with a fraction to orjson)."""
    import orjson

    from iam.api import api as registry
    from iam.jsonapi.encoding import encode
    from iam.jsonapi.render import Renderer, plan_for

    compared = 0
    with app.test_request_context():
        for resource in registry.resources.values():
            plan = plan_for(resource.schema_class)
            for obj in db.session.scalars(db.select(resource.model)).all():
                dumped = resource.schema_class().dump(obj)["data"].get("attributes", {})
                fast = orjson.loads(encode(Renderer(registry, "http://x", {})._item(plan, obj)["attributes"]))
                slow = orjson.loads(encode({key: get(obj) for key, get in plan.attributes}))
                assert (fast, slow) == (dumped, dumped), resource.type
                compared += 1
    assert compared > 20


@pytest.mark.parametrize("microsecond", [0, 1, 999999])
def test_timestamps_render_with_six_digits_and_z_whatever_their_fraction(app, admin, factory, microsecond):
    # orjson writes the datetimes with a fraction, format_timestamp the others: both the same way
    from datetime import datetime, timezone

    when = datetime(2026, 3, 4, 5, 6, 7, microsecond, tzinfo=timezone.utc)
    account = factory.account(email=f"at-{microsecond}@example.com", created_at=when, last_login_at=when)
    for path in (f"/accounts/{account.id}", f"/accounts?filter[email]=at-{microsecond}@example.com"):
        body = assert_jsonapi(admin.get(path), 200)
        data = body["data"] if isinstance(body["data"], dict) else body["data"][0]
        expected = f"2026-03-04T05:06:07.{microsecond:06d}Z"
        assert data["attributes"]["created_at"] == expected and data["attributes"]["last_login_at"] == expected
