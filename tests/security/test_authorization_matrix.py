"""The authorization matrix (contract section 6, iam/auth/policy.py): who sees and changes what.

One world per test: organizations A and B, the units a_root > a_child and a_other in A and
b_root in B, people and accounts in them, roles, sessions, API keys and audit events, plus
five principals: a global `admin` (no organization), and `org_admin`, `ou_manager`,
`auditor` and `plain` whose own accounts belong to A (plain's person sits in a_child).

What each principal should see is computed here in plain Python from facts about each row
(its organization, its unit, the account owning it), independently of the policy's SQL:
- admin: everything;
- org_admin and auditor of A: every row of A (audit events included), plus their own rows;
- ou_manager of a_root: the units a_root and a_child, the people and accounts in them (and
  those accounts' roles), organization A, plus its own rows;
- plain: only its own account, person, organization, unit, roles, sessions and API keys.
"""
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from iam.auth.tokens import issue_access_token
from iam.extensions import db
from iam.models import (Account, AccountRole, AccountSession, ApiKey, AuditEvent, Organization,
                        OrganizationalUnit, Person, utcnow)
from tests.helpers import ApiClient, assert_jsonapi, error_of

PRINCIPALS = ["admin", "org_admin", "ou_manager", "auditor", "plain"]
NON_ADMINS = PRINCIPALS[1:]
TYPES = ["accounts", "people", "organizations", "organizational_units", "account_roles", "account_sessions",
         "api_keys", "audit_events"]
MISSING_ID = 2 ** 31 - 1


# ------------------------------------------------------------------ the world

@dataclass
class Row:
    """What decides visibility of a row: its organization, its unit and the account owning it."""
    id: int
    org: int = None
    unit: int = None
    owner: int = None
    parent: int = None       # units: the parent unit


@dataclass
class Me:
    account: int
    person: int = None
    org: int = None
    unit: int = None


@dataclass
class World:
    app: object
    ids: dict                                   # name -> id
    me: dict                                    # principal -> Me
    clients: dict                               # principal -> ApiClient
    rows: dict = field(default_factory=dict)    # type -> {id: Row}

    def __getattr__(self, name):
        try:
            return self.__dict__["ids"][name]
        except KeyError:
            raise AttributeError(name) from None


def _facts(session):
    """{type: {id: Row}} read back from the database once the world is written."""
    people = {p.id: Row(p.id, org=p.organization_id, unit=p.organizational_unit_id)
              for p in session.scalars(select(Person))}
    accounts = {}
    for a in session.scalars(select(Account)):
        accounts[a.id] = Row(a.id, org=a.organization_id, unit=people[a.person_id].unit if a.person_id else None,
                             owner=a.id)
        if a.person_id:
            people[a.person_id].owner = a.id

    def owned(model):
        return {r.id: Row(r.id, org=accounts[r.account_id].org, unit=accounts[r.account_id].unit,
                          owner=r.account_id) for r in session.scalars(select(model))}

    return {
        "accounts": accounts,
        "people": people,
        "organizations": {o.id: Row(o.id, org=o.id) for o in session.scalars(select(Organization))},
        "organizational_units": {u.id: Row(u.id, org=u.organization_id, unit=u.id, parent=u.parent_id)
                                 for u in session.scalars(select(OrganizationalUnit))},
        "account_roles": owned(AccountRole),
        "account_sessions": owned(AccountSession),
        "api_keys": owned(ApiKey),
        "audit_events": {e.id: Row(e.id, org=e.organization_id) for e in session.scalars(select(AuditEvent))},
    }


@pytest.fixture
def world(app):
    """Written in one transaction through the models, in few flushes (the matrix builds it per test)."""
    with app.test_request_context():
        s, now = db.session, utcnow()
        A, B = Organization(name="A", slug="org-a"), Organization(name="B", slug="org-b")
        units = {}
        for name, org, parent in (("a_root", A, None), ("a_child", A, "a_root"), ("a_other", A, None),
                                  ("b_root", B, None)):
            parent = units.get(parent)
            units[name] = OrganizationalUnit(organization=org, parent=parent, name=name, policies={}, ancestry="",
                                             path=(parent.path if parent else "") + "/" + name)
        s.add_all([A, B, *units.values()])
        s.flush()
        for unit in units.values():  # parents come first: ancestry as the API writes it (/1/2/)
            unit.ancestry = (unit.parent.ancestry if unit.parent else "/") + f"{unit.id}/"

        people = {name: Person(organization=org, organizational_unit=units.get(unit), first_name=name)
                  for name, org, unit in (
                      ("p_a_root", A, "a_root"), ("p_a_child", A, "a_child"), ("p_a_other", A, "a_other"),
                      ("p_a_loose", A, None),  # in A, in no unit
                      ("p_b", B, "b_root"), ("p_plain", A, "a_child"))}

        def account(name, org, person=None, roles=()):
            return Account(email=f"{name}@example.com", organization=org, person=people.get(person),
                           roles=[AccountRole(name=r, scopes=scopes, info={}) for r, scopes in roles])

        accounts = {
            # acc_a_root holds a global admin role: an org_admin of A sees it but may not touch it.
            "acc_a_root": account("a-root", A, "p_a_root", [("developer", {"project": [1]}), ("admin", {})]),
            "acc_a_child": account("a-child", A, "p_a_child", [("developer", {})]),
            "acc_a_other": account("a-other", A, "p_a_other"),
            "acc_b": account("b", B, "p_b", [("org_admin", {"organization": [B.id]}), ("developer", {})]),
            "loner": account("loner", None, None, [("developer", {})]),   # no organization at all
            "admin": account("admin", None, None, [("admin", {})]),
            "org_admin": account("org-admin", A, None, [("org_admin", {"organization": [A.id]})]),
            "ou_manager": account("ou-manager", A, None, [("ou_manager", {"ou": [units["a_root"].id]})]),
            "auditor": account("auditor", A, None, [("auditor", {"organization": [A.id]})]),
            "plain": account("plain", A, "p_plain"),
        }
        sessions = {name: AccountSession(account=accounts[name], expires_at=now + timedelta(days=1),
                                         last_used_at=now)
                    for name in ("acc_a_child", "acc_b", "loner", *PRINCIPALS)}   # principals': their tokens'
        keys = {}
        for n, name in enumerate(["acc_a_child", "acc_b", "loner", *PRINCIPALS]):
            raw = f"IAM_{n:02d}" + "k" * 41
            keys[name] = ApiKey(account=accounts[name], name="script", prefix=raw[:8], scopes={},
                                key_digest=hashlib.sha256(raw.encode()).hexdigest())
        events = {name: AuditEvent(action="update", resource_type="people", resource_id="1", organization_id=org,
                                   changes={})
                  for name, org in (("event_a1", A.id), ("event_a2", A.id), ("event_b", B.id), ("event_none", None))}
        s.add_all([*people.values(), *accounts.values(), *sessions.values(), *keys.values(), *events.values()])
        s.flush()

        ids = {"A": A.id, "B": B.id}
        for group, prefix in ((units, ""), (people, ""), (accounts, ""), (events, ""), (sessions, "session_"),
                              (keys, "key_")):
            ids.update({prefix + name: obj.id for name, obj in group.items()})
        rows = _facts(s)
        s.commit()
        tokens = {who: issue_access_token(ids[who], ids[f"session_{who}"])[0] for who in PRINCIPALS}

    clients = {who: ApiClient(app.test_client(), token) for who, token in tokens.items()}
    me = {who: Me(ids[who], org=ids["A"] if who != "admin" else None) for who in PRINCIPALS}
    me["plain"] = Me(ids["plain"], person=ids["p_plain"], org=ids["A"], unit=ids["a_child"])
    return World(app, ids, me, clients, rows)


# ------------------------------------------------------------------ what each principal should see

def _own(w, who, type_, row):
    me = w.me[who]
    return {
        "accounts": row.id == me.account,
        "people": me.person is not None and row.id == me.person,
        "organizations": me.org is not None and row.id == me.org,
        "organizational_units": me.unit is not None and row.id == me.unit,
        "account_roles": row.owner == me.account,
        "account_sessions": row.owner == me.account,
        "api_keys": row.owner == me.account,
        "audit_events": False,
    }[type_]


def _granted(w, who, type_, row):
    """What the principal's role lets it read beyond its own rows."""
    if who == "admin":
        return True
    if who in ("org_admin", "auditor"):          # everything inside organization A
        return row.org == w.A
    if who == "ou_manager":                      # people and accounts in a_root and below
        subtree = {w.a_root, w.a_child}
        if type_ in ("accounts", "people", "account_roles", "organizational_units"):
            return row.unit in subtree
        return type_ == "organizations" and row.id == w.A
    return False


def visible(w, who, type_, where=lambda row: True):
    return {i for i, row in w.rows[type_].items()
            if where(row) and (_granted(w, who, type_, row) or _own(w, who, type_, row))}


def b_rows(w, type_):
    return {i for i, row in w.rows[type_].items() if row.org == w.B}


def listed(body):
    return {int(item["id"]) for item in body["data"]}


# ------------------------------------------------------------------ 1, 2, 4: lists, counts, filters, shows

# A filter asking for B's rows explicitly, per type.
B_FILTER = {
    "accounts": ("organization_id", "B"), "people": ("organization_id", "B"),
    "organizational_units": ("organization_id", "B"), "audit_events": ("organization_id", "B"),
    "organizations": ("id", "B"), "account_roles": ("account_id", "acc_b"),
    "account_sessions": ("account_id", "acc_b"), "api_keys": ("account_id", "acc_b"),
}


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("who", PRINCIPALS)
def test_lists_counts_and_shows_hold_exactly_what_the_principal_may_see(world, who, type_):
    api, expected, of_b = world.clients[who], visible(world, who, type_), b_rows(world, type_)
    assert of_b, "the world has rows of B of every type"

    body = assert_jsonapi(api.get(f"/{type_}", {"count": "true"}), 200)
    assert listed(body) == expected
    assert body["meta"]["count"] == len(expected)

    # Asking for B's rows by filter finds nothing (count 0) but for admins.
    name, row = B_FILTER[type_]
    body = assert_jsonapi(api.get(f"/{type_}", {f"filter[{name}]": str(world.ids[row]), "count": "true"}), 200)
    expected_b = of_b if who == "admin" else set()
    assert listed(body) == expected_b and body["meta"]["count"] == len(expected_b)

    # Every row it may not see (B's among them) is 404 not_found; one it sees shows.
    for row_id in sorted(set(world.rows[type_]) - expected):
        assert error_of(api.get(f"/{type_}/{row_id}"), 404)["code"] == "not_found", row_id
    for row_id in sorted(expected)[:1]:
        assert assert_jsonapi(api.get(f"/{type_}/{row_id}"), 200)["data"]["id"] == str(row_id)
    if who != "admin":
        assert not expected & of_b


@pytest.mark.parametrize("who", NON_ADMINS)
def test_an_invisible_id_answers_exactly_like_a_missing_one(world, who):
    """No oracle: for every type and method, a B id and an id that exists nowhere get the same answer."""
    api, differences = world.clients[who], []
    for type_ in TYPES:
        b_id = min(b_rows(world, type_))
        for method in ("get", "patch", "delete"):
            answers = []
            for row_id in (b_id, MISSING_ID):
                path = f"/{type_}/{row_id}"
                response = (api.patch(path, {"data": {"type": type_, "id": str(row_id), "attributes": {}}})
                            if method == "patch" else getattr(api, method)(path))
                answers.append((response.status_code, assert_jsonapi(response)["errors"][0]["code"]))
            if answers[0] != answers[1]:
                differences.append((method, type_, answers))
    assert differences == []


# ------------------------------------------------------------------ 3: included

INCLUDES = [
    ("accounts", "roles,person,organization"),
    ("accounts", "roles.account,person.organizational_unit"),
    ("people", "account,organizational_unit"),
    ("account_roles", "account.person"),
    ("organizational_units", "parent,children,organization"),
]


@pytest.mark.parametrize("who", PRINCIPALS)
def test_included_holds_only_what_the_principal_may_see(world, who):
    for type_, included in INCLUDES:
        body = assert_jsonapi(world.clients[who].get(f"/{type_}", {"included": included}), 200)
        assert listed(body) == visible(world, who, type_), included
        assert body["included"] or not body["data"], "the check is not vacuous"
        for item in body["included"]:
            assert int(item["id"]) in visible(world, who, item["type"]), (included, item)
            if who != "admin":
                assert int(item["id"]) not in b_rows(world, item["type"]), (included, item)
        # The linkage of the included relationships of the primary data names visible rows only.
        first_hops = {path.split(".")[0] for path in included.split(",")}
        for item in body["data"]:
            for name, rel in item.get("relationships", {}).items():
                data = rel.get("data") if name in first_hops else None
                for ident in (data if isinstance(data, list) else [data] if data else []):
                    assert int(ident["id"]) in visible(world, who, ident["type"]), (item["id"], name, ident)


# ------------------------------------------------------------------ 4: related and relationship endpoints

# (parent type, parent row, relationship, target type, which target rows are related)
RELATED = [
    ("organizations", "A", "accounts", "accounts", lambda w, r: r.org == w.A),
    ("organizations", "A", "organizational_units", "organizational_units", lambda w, r: r.org == w.A),
    ("organizations", "B", "accounts", "accounts", lambda w, r: r.org == w.B),
    ("organizations", "B", "organizational_units", "organizational_units", lambda w, r: r.org == w.B),
    ("organizational_units", "a_root", "children", "organizational_units", lambda w, r: r.parent == w.a_root),
    ("organizational_units", "a_child", "people", "people", lambda w, r: r.unit == w.a_child),
    ("organizational_units", "a_child", "parent", "organizational_units", lambda w, r: r.id == w.a_root),
    ("organizational_units", "b_root", "people", "people", lambda w, r: r.unit == w.b_root),
    ("accounts", "acc_a_child", "roles", "account_roles", lambda w, r: r.owner == w.acc_a_child),
    ("accounts", "acc_a_child", "sessions", "account_sessions", lambda w, r: r.owner == w.acc_a_child),
    ("accounts", "acc_a_child", "api_keys", "api_keys", lambda w, r: r.owner == w.acc_a_child),
    ("accounts", "plain", "sessions", "account_sessions", lambda w, r: r.owner == w.plain),
    ("accounts", "acc_b", "roles", "account_roles", lambda w, r: r.owner == w.acc_b),
    ("accounts", "acc_b", "sessions", "account_sessions", lambda w, r: r.owner == w.acc_b),
    ("accounts", "acc_b", "person", "people", lambda w, r: r.id == w.p_b),
    ("people", "p_a_child", "account", "accounts", lambda w, r: r.id == w.acc_a_child),
    ("people", "p_b", "account", "accounts", lambda w, r: r.id == w.acc_b),
]


@pytest.mark.parametrize("who", PRINCIPALS)
def test_related_endpoints_show_only_visible_rows(world, who):
    """GET /T/:id/R and /T/:id/relationships/R: 404 if the row is invisible, else only visible targets."""
    api, wrong = world.clients[who], []
    for parent_type, parent, rel, target, related in RELATED:
        parent_id = world.ids[parent]
        for path in (f"/{parent_type}/{parent_id}/{rel}", f"/{parent_type}/{parent_id}/relationships/{rel}"):
            response = api.get(path)
            if parent_id not in visible(world, who, parent_type):
                if error_of(response, response.status_code)["code"] != "not_found":
                    wrong.append((path, response.status_code))
                continue
            data = assert_jsonapi(response, 200)["data"]
            got = {int(i["id"]) for i in (data if isinstance(data, list) else [data] if data else [])}
            expected = visible(world, who, target, lambda r, related=related: related(world, r))
            if got != expected:
                wrong.append((path, sorted(got), sorted(expected)))
    assert not wrong, "\n" + "\n".join(map(str, wrong))


# Filters through relationships may not test rows the caller cannot see (no oracle):
# (type, filter, value, the related row it matches, the row of `type` it would find).
FILTERS_THROUGH = [
    ("organizational_units", "people.first_name", "p_a_child", ("people", "p_a_child"), "a_child"),
    ("organizational_units", "people.first_name", "p_plain", ("people", "p_plain"), "a_child"),
    ("organizations", "accounts.email", "a-other@example.com", ("accounts", "acc_a_other"), "A"),
    ("organizations", "accounts.email", "b@example.com", ("accounts", "acc_b"), "B"),
    ("organizational_units", "parent.name", "a_root", ("organizational_units", "a_root"), "a_child"),
    ("people", "account.email", "a-child@example.com", ("accounts", "acc_a_child"), "p_a_child"),
]


@pytest.mark.parametrize("who", PRINCIPALS)
def test_filters_through_relationships_see_only_visible_rows(world, who):
    api, wrong = world.clients[who], []
    for type_, name, value, (target_type, target), found in FILTERS_THROUGH:
        body = assert_jsonapi(api.get(f"/{type_}", {f"filter[{name}]": value}), 200)
        got = listed(body)
        found_id = world.ids[found]
        target_seen = world.ids[target] in visible(world, who, target_type)
        if found_id in got and not target_seen:
            wrong.append(("found through an invisible row", type_, name, value))
        if found_id not in got and target_seen and found_id in visible(world, who, type_):
            wrong.append(("not found", type_, name, value))
    assert not wrong, wrong


# ------------------------------------------------------------------ 5: writes

# Every case runs for every principal on rows made for that attempt (`new_*`), so no write
# of one attempt changes what the next one finds; B's rows and the units are shared.
# The row name "me" is the account of the principal making the attempt.

def _insert(w, obj):
    with w.app.app_context():
        db.session.add(obj)
        db.session.commit()
        return obj.id


def row(name):
    return lambda w: w.ids[name]


def new_person(org, unit=None):
    return lambda w: _insert(w, Person(organization_id=w.ids[org], organizational_unit_id=w.ids.get(unit),
                                       first_name="Fresh"))


def new_account(org, unit, roles=()):
    """An account of `org` whose person sits in `unit`, holding these (name, scopes) roles."""
    def make(w):
        person_id = new_person(org, unit)(w)
        return _insert(w, Account(email=f"fresh-{person_id}@example.com", organization_id=w.ids[org],
                                  person_id=person_id,
                                  roles=[AccountRole(name=n, scopes=sc, info={}) for n, sc in roles]))
    return make


def new_role(account, name, scopes):
    return lambda w: _insert(w, AccountRole(account_id=w.ids[account], name=name, scopes=scopes, info={}))


def new_session(account):
    return lambda w: _insert(w, AccountSession(account_id=w.ids[account], expires_at=utcnow() + timedelta(days=1)))


def new_key(account):
    def make(w):
        raw = "IAM_" + secrets.token_urlsafe(32)
        return _insert(w, ApiKey(account_id=w.ids[account], name="script", prefix=raw[:8], scopes={},
                                 key_digest=hashlib.sha256(raw.encode()).hexdigest()))
    return make


def post_person(org):
    return lambda w, api: api.post("/people", {"data": {"type": "people", "attributes": {
        "organization_id": w.ids[org], "first_name": "New"}}})


def patch(type_, target, attributes):
    def run(w, api):
        row_id = target(w)
        return api.patch(f"/{type_}/{row_id}", {"data": {"type": type_, "id": str(row_id),
                                                         "attributes": attributes(w)}})
    return run


def delete(type_, target):
    return lambda w, api: api.delete(f"/{type_}/{target(w)}")


def grant(name, scopes, account="acc_a_child"):
    return lambda w, api: api.post("/account_roles", {"data": {"type": "account_roles", "attributes": {
        "name": name, "account_id": w.ids[account], "scopes": scopes(w)}}})


def post_key(account=None):
    return lambda w, api: api.post("/api_keys", {"data": {"type": "api_keys", "attributes": {
        "name": "script", **({"account_id": w.ids[account]} if account else {})}}})


F, NF = "403 forbidden", "404 not_found"
ORG_ID, UNIT_ID = "/data/attributes/organization_id", "/data/attributes/organizational_unit_id"
SCOPES, NAME, ACCOUNT_ID = "/data/attributes/scopes", "/data/attributes/name", "/data/attributes/account_id"

# The expected answer per principal: "STATUS [CODE [POINTER]]".
# Contract 6: a row the caller cannot see does not exist for it, so its id answers 404
# whatever the method (the grant-less auditor and plain included); a row it sees but may not
# change answers 403; an id in a body naming a row it cannot see is 422 not_found.
WRITES = {
    "create a person in A": (post_person("A"),
                             {"admin": "201", "org_admin": "201", "ou_manager": F, "auditor": F, "plain": F}),
    # B does not exist for the org_admin of A: the id in the body names nothing it can see,
    # so the engine's check_references answers 422 not_found (resource.py) before the
    # policy's check_write would say 403 with that pointer.
    "create a person in B": (post_person("B"),
                             {"admin": "201", "org_admin": f"422 not_found {ORG_ID}", "ou_manager": F,
                              "auditor": F, "plain": F}),
    "update a person in a_child": (patch("people", new_person("A", "a_child"), lambda w: {"first_name": "Renamed"}),
                                   {"admin": "200", "org_admin": "200", "ou_manager": "200", "auditor": F,
                                    "plain": NF}),
    "update a person in a_other": (patch("people", new_person("A", "a_other"), lambda w: {"first_name": "Renamed"}),
                                   {"admin": "200", "org_admin": "200", "ou_manager": NF, "auditor": F,
                                    "plain": NF}),
    "update a person in B": (patch("people", new_person("B", "b_root"), lambda w: {"first_name": "Renamed"}),
                             {"admin": "200", "org_admin": NF, "ou_manager": NF, "auditor": NF, "plain": NF}),
    "move a person of a_child to unit b_root": (
        patch("people", new_person("A", "a_child"), lambda w: {"organizational_unit_id": w.b_root}),
        {"admin": f"422 invalid_value {UNIT_ID}", "org_admin": f"422 not_found {UNIT_ID}",
         "ou_manager": f"422 not_found {UNIT_ID}", "auditor": F, "plain": NF}),
    "move a person of a_child to organization B": (
        patch("people", new_person("A", "a_child"), lambda w: {"organization_id": w.B}),
        {"admin": "422 invalid_value", "org_admin": f"422 not_found {ORG_ID}",
         "ou_manager": f"422 not_found {ORG_ID}", "auditor": F, "plain": NF}),
    "update an account in a_child": (patch("accounts", new_account("A", "a_child"), lambda w: {"enabled": False}),
                                     {"admin": "200", "org_admin": "200", "ou_manager": "200", "auditor": F,
                                      "plain": NF}),
    "update an account in B": (patch("accounts", new_account("B", "b_root"), lambda w: {"enabled": False}),
                               {"admin": "200", "org_admin": NF, "ou_manager": NF, "auditor": NF, "plain": NF}),
    "delete an account in A": (delete("accounts", new_account("A", "a_root")),
                               {"admin": "204", "org_admin": "204", "ou_manager": F, "auditor": F, "plain": NF}),
    # An account holding rights its would-be changer could not grant is out of its reach.
    "update an account of A holding a global admin role": (
        patch("accounts", new_account("A", "a_child", [("admin", {})]), lambda w: {"enabled": False}),
        {"admin": "200", "org_admin": F, "ou_manager": F, "auditor": F, "plain": NF}),
    "delete an account of A holding a global admin role": (
        delete("accounts", new_account("A", "a_root", [("admin", {})])),
        {"admin": "204", "org_admin": F, "ou_manager": F, "auditor": F, "plain": NF}),
    "delete an account in B": (delete("accounts", new_account("B", "b_root")),
                               {"admin": "204", "org_admin": NF, "ou_manager": NF, "auditor": NF, "plain": NF}),
    # a_child is plain's own unit: it sees it, and may not change it.
    "update unit a_child": (patch("organizational_units", row("a_child"), lambda w: {"description": "x"}),
                            {"admin": "200", "org_admin": "200", "ou_manager": F, "auditor": F, "plain": F}),
    "update unit b_root": (patch("organizational_units", row("b_root"), lambda w: {"description": "x"}),
                           {"admin": "200", "org_admin": NF, "ou_manager": NF, "auditor": NF, "plain": NF}),
    "create an organization": (
        lambda w, api: api.post("/organizations", {"data": {"type": "organizations", "attributes": {
            "name": "C", "slug": "org-c"}}}),
        {"admin": "201", "org_admin": F, "ou_manager": F, "auditor": F, "plain": F}),
    "grant admin": (grant("admin", lambda w: {}),
                    {"admin": "201", "org_admin": f"{F} {NAME}", "ou_manager": F, "auditor": F, "plain": F}),
    "grant org_admin of A": (grant("org_admin", lambda w: {"organization": [w.A]}),
                             {"admin": "201", "org_admin": "201", "ou_manager": F, "auditor": F, "plain": F}),
    # Organization B and its units do not exist for an org_admin of A: no such id in the scope.
    "grant org_admin of B": (grant("org_admin", lambda w: {"organization": [w.B]}),
                             {"admin": "201", "org_admin": f"422 not_found {SCOPES}/organization", "ou_manager": F,
                              "auditor": F, "plain": F}),
    "grant org_admin globally": (grant("org_admin", lambda w: {}),
                                 {"admin": "201", "org_admin": f"{F} {SCOPES}", "ou_manager": F, "auditor": F,
                                  "plain": F}),
    "grant a project role": (grant("developer", lambda w: {"project": [1]}),
                             {"admin": "201", "org_admin": f"{F} {SCOPES}", "ou_manager": F, "auditor": F,
                              "plain": F}),
    "grant auditor of unit a_root": (grant("auditor", lambda w: {"ou": [w.a_root]}),
                                     {"admin": "201", "org_admin": "201", "ou_manager": F, "auditor": F,
                                      "plain": F}),
    "grant auditor of unit b_root": (grant("auditor", lambda w: {"ou": [w.b_root]}),
                                     {"admin": "201", "org_admin": f"422 not_found {SCOPES}/ou", "ou_manager": F,
                                      "auditor": F, "plain": F}),
    "grant a role to an account of B": (
        grant("org_admin", lambda w: {"organization": [w.A]}, account="acc_b"),
        {"admin": "201", "org_admin": f"422 not_found {ACCOUNT_ID}", "ou_manager": F, "auditor": F, "plain": F}),
    # Roles of acc_a_root (in a_root): an org_admin of A may not touch what it could not grant.
    "update a project role of an account of A": (
        patch("account_roles", new_role("acc_a_root", "developer", {"project": [1]}), lambda w: {"info": {"x": 1}}),
        {"admin": "200", "org_admin": F, "ou_manager": F, "auditor": F, "plain": NF}),
    "update a global admin role of an account of A": (
        patch("account_roles", new_role("acc_a_root", "admin", {}), lambda w: {"info": {"x": 1}}),
        {"admin": "200", "org_admin": F, "ou_manager": F, "auditor": F, "plain": NF}),
    "delete a global admin role of an account of A": (
        delete("account_roles", new_role("acc_a_root", "admin", {})),
        {"admin": "204", "org_admin": F, "ou_manager": F, "auditor": F, "plain": NF}),
    "delete a role of an account of B": (delete("account_roles", new_role("acc_b", "developer", {})),
                                         {"admin": "204", "org_admin": NF, "ou_manager": NF, "auditor": NF,
                                          "plain": NF}),
    # Sessions and keys: anyone may end their own; the auditor sees A's but changes nothing.
    "end a session of an account of A": (delete("account_sessions", new_session("acc_a_child")),
                                         {"admin": "204", "org_admin": "204", "ou_manager": NF, "auditor": F,
                                          "plain": NF}),
    "end a session of an account of B": (delete("account_sessions", new_session("acc_b")),
                                         {"admin": "204", "org_admin": NF, "ou_manager": NF, "auditor": NF,
                                          "plain": NF}),
    "revoke an API key of an account of A": (delete("api_keys", new_key("acc_a_child")),
                                             {"admin": "204", "org_admin": "204", "ou_manager": NF,
                                              "auditor": F, "plain": NF}),
    "revoke an API key of an account of B": (delete("api_keys", new_key("acc_b")),
                                             {"admin": "204", "org_admin": NF, "ou_manager": NF, "auditor": NF,
                                              "plain": NF}),
    # Self-management is everyone's, the auditor's too (contract 6: "Everyone may ...").
    "revoke one's own API key": (delete("api_keys", new_key("me")),
                                 {who: "204" for who in PRINCIPALS}),
    "create one's own API key": (post_key(), {who: "201" for who in PRINCIPALS}),
    # Contract 4, api_keys: "admins may name an account they administer"; an org_admin
    # administers the accounts of its organization.
    "create an API key for an account of A": (
        post_key("acc_a_child"),
        {"admin": "201", "org_admin": "201", "ou_manager": f"{F} {ACCOUNT_ID}", "auditor": f"{F} {ACCOUNT_ID}",
         "plain": f"422 not_found {ACCOUNT_ID}"}),
    "create an API key for an account of B": (
        post_key("acc_b"), {"admin": "201", **{who: f"422 not_found {ACCOUNT_ID}" for who in NON_ADMINS}}),
}


@pytest.mark.parametrize("case", list(WRITES))
def test_writes(world, case):
    run, expectations = WRITES[case]
    wrong = []
    for who in PRINCIPALS:
        world.ids["me"] = world.ids[who]
        response = run(world, world.clients[who])
        body = assert_jsonapi(response)
        error = body["errors"][0] if response.status_code >= 400 else {}
        answer = [str(response.status_code), error.get("code"), error.get("source", {}).get("pointer")]
        expected = expectations[who].split(" ")
        if answer[:len(expected)] != expected:
            wrong.append(f"{who}: expected {expectations[who]}, got {' '.join(filter(None, answer))}"
                         f" ({error.get('detail')})")
    assert not wrong, "\n" + "\n".join(wrong)
