"""iam/scim/filters.py: SCIM filters compiled to SQL give exactly the right rows, on SQLite and
PostgreSQL, and anything malformed is an InvalidFilter, never another exception.

Every test builds the same small world (ten accounts, nine with a person, three groups) and
compares the names of the rows a filter finds, never their order (sorting tests aside). The
mapping below is the kind a SCIM endpoint passes: this module owns it, so the compiler is
tested on its own, apart from the endpoint's.
"""
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from iam.extensions import db
from iam.models import Account, Group, Person
from iam.models.group import group_members
from iam.scim.filters import (CORE_GROUP, CORE_USER, ENTERPRISE_USER, MAX_DEPTH, MAX_LENGTH, Attr, InvalidFilter,
                              InvalidSort, MultiValued, compile_filter, compile_sort, sort_order_clauses)

ENTERPRISE = ENTERPRISE_USER + ":"
CORE = CORE_USER + ":"

Member = aliased(Account, name="member")

USER = {
    "id": Attr(Account.id, type="id"),
    "username": Attr(Account.email),
    "active": Attr(Account.enabled),
    "externalid": Attr(Account.external_id, case_exact=True),
    "name.givenname": Attr(Person.first_name),
    "name.familyname": Attr(Person.last_name),
    "displayname": Attr(Person.display_name),
    "emails": MultiValued(rows=[
        {"value": Attr(Account.email), "type": "work", "primary": True},
        {"value": Attr(Person.secondary_email), "type": "home", "primary": False},
    ]),
    "meta.created": Attr(Account.created_at),
    "meta.lastmodified": Attr(Account.updated_at, type="datetime"),
    "employeenumber": Attr(Person.employee_number),
    "department": Attr(Person.department),
    "manager.value": Attr(Account.manager_id, type="id"),
}
USER_SCHEMAS = (CORE_USER, ENTERPRISE_USER)

GROUP = {
    "id": Attr(Group.id, type="id"),
    "displayname": Attr(Group.name),
    "externalid": Attr(Group.external_id, case_exact=True),
    "meta.created": Attr(Group.created_at),
    "members": MultiValued(
        exists=lambda condition: exists(
            select(1).select_from(group_members.join(Member, Member.id == group_members.c.account_id))
            .where(group_members.c.group_id == Group.id, condition)),
        attributes={"value": Attr(group_members.c.account_id, type="id"), "type": "User",
                    "display": Attr(Member.email)}),
}
GROUP_SCHEMAS = (CORE_GROUP,)


def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# name: (account columns, person columns or None)
PEOPLE = {
    "alice": ({"email": "alice@example.com", "external_id": "ext-A1", "created_at": at("2024-01-01T00:00:00Z")},
              {"first_name": "Alice", "last_name": "Smith", "display_name": "Alice Smith", "employee_number": "E-001",
               "department": "Engineering", "secondary_email": "alice.home@example.net"}),
    "bob": ({"email": "Bob.Jones@Example.COM", "external_id": "EXT-b2", "created_at": at("2024-01-02T00:00:00Z")},
            {"first_name": "Bob", "last_name": "Jones", "display_name": "Bob J", "employee_number": "E-002",
             "department": "engineering", "secondary_email": "bobby@home.example"}),
    "carol": ({"email": "carol@example.org", "enabled": False, "external_id": "ext-c3",
               "created_at": at("2024-01-03T00:00:00Z")},
              {"first_name": "Carol", "last_name": "smith", "employee_number": "E-003", "department": "Sales"}),
    "dave": ({"email": "dave@example.net", "created_at": at("2024-01-04T00:00:00Z")},
             {"first_name": "Dave", "display_name": ""}),
    "eve": ({"email": "eve@example.com", "enabled": False, "created_at": at("2024-01-05T00:00:00Z")}, None),
    "sale": ({"email": "sale50%_off@example.com", "external_id": "50%_off", "created_at": at("2024-01-06T00:00:00Z")},
             {"first_name": "Percent", "last_name": "Under_score", "display_name": "50%_off deal"}),
    "decoy": ({"email": "sale50xyoff@example.com", "external_id": "50xyoff",
               "created_at": at("2024-01-07T00:00:00Z")},
              {"first_name": "Decoy", "last_name": "Underxscore", "display_name": "50xyoff deal"}),
    "slash": ({"email": "slash@example.com", "external_id": "a/b\\c", "created_at": at("2024-01-08T12:30:00.123456Z")},
              {"first_name": "Zo\u00eb", "last_name": "O'Brien", "display_name": 'say "hi"/bye'}),
    "frank": ({"email": "frank@example.com", "external_id": "ext-f7", "created_at": at("2025-06-01T00:00:00Z")},
              {"first_name": "frank", "last_name": "Smithson", "display_name": "Frank", "department": "Sales"}),
    "grace": ({"email": "grace@example.com", "external_id": "EXT-G8", "created_at": at("2025-06-01T00:00:00.000001Z")},
              {"first_name": "Grace", "last_name": "Hopper", "display_name": "Grace H", "employee_number": "E-010",
               "department": "Engineering"}),
}
MANAGERS = {"bob": "alice", "carol": "alice"}
GROUPS = {"admins": ("Admins", "g-1", ["alice", "bob"]), "sales": ("Sales Team", None, ["carol", "frank"]),
          "empty": ("Empty", "G-3", [])}
EVERYONE = set(PEOPLE)
ALL_GROUPS = set(GROUPS)


class World:
    def __init__(self, app, users, groups):
        self.app, self.users, self.groups = app, users, groups
        self.user_names = {id_: name for name, id_ in users.items()}
        self.group_names = {id_: name for name, id_ in groups.items()}

    def ids(self):
        return {**self.users, **{f"group_{name}": id_ for name, id_ in self.groups.items()}}

    def text(self, template):
        return template.format(**self.ids())

    def run(self, query):
        with self.app.app_context():
            try:
                return list(db.session.scalars(query))
            finally:
                db.session.rollback()

    def user_query(self, expression):
        return (select(Account.id).outerjoin(Person, Account.person_id == Person.id)
                .where(Account.id.in_(list(self.users.values())), expression))

    def find_users(self, template):
        expression = compile_filter(self.text(template), USER, USER_SCHEMAS)
        return {self.user_names[id_] for id_ in self.run(self.user_query(expression))}

    def find_groups(self, template):
        expression = compile_filter(self.text(template), GROUP, GROUP_SCHEMAS)
        return {self.group_names[id_] for id_ in self.run(select(Group.id).where(expression))}

    def sorted_users(self, sort_by, descending=False):
        expression = compile_sort(sort_by, USER, USER_SCHEMAS)
        query = (select(Account.id).outerjoin(Person, Account.person_id == Person.id)
                 .where(Account.id.in_(list(self.users.values())))
                 .order_by(*sort_order_clauses(expression, descending), Account.id))
        return [self.user_names[id_] for id_ in self.run(query)]


@pytest.fixture
def world(app, factory):
    organization = factory.organization(slug="scim-filters", name="SCIM filters")
    users = {}
    for name, (account, person) in PEOPLE.items():
        account = dict(account)
        account.setdefault("updated_at", account["created_at"] + timedelta(hours=1))
        if person is not None:
            account["person_id"] = factory.person(organization, **person).id
        if name in MANAGERS:
            account["manager_id"] = users[MANAGERS[name]]
        users[name] = factory.account(organization_id=organization.id, **account).id
    groups = {}
    with app.app_context():
        for name, (display, external_id, members) in GROUPS.items():
            group = Group(name=display, external_id=external_id, organization_id=organization.id, roles=[])
            db.session.add(group)
            db.session.flush()
            groups[name] = group.id
            for member in members:
                db.session.execute(group_members.insert().values(group_id=group.id, account_id=users[member]))
        db.session.commit()
    return World(app, users, groups)


def but(*names):
    return EVERYONE - set(names)


USER_CASES = [
    # Case-insensitive strings, every operator; attribute and operator names in any case.
    ('userName eq "ALICE@example.com"', {"alice"}),
    ('userName eq "bob.jones@example.com"', {"bob"}),
    ('USERNAME Eq "alice@EXAMPLE.com"', {"alice"}),
    ('userName ne "alice@example.com"', but("alice")),
    ('userName co "EXAMPLE.C"', but("carol", "dave")),
    ('userName sw "CAROL"', {"carol"}),
    ('userName ew ".NET"', {"dave"}),
    ('userName gt "f"', {"frank", "grace", "sale", "decoy", "slash"}),
    ('userName ge "frank@example.com"', {"frank", "grace", "sale", "decoy", "slash"}),
    ('userName lt "BOB.JONES@example.com"', {"alice"}),
    ('userName le "bob.jones@example.com"', {"alice", "bob"}),
    ('userName co ""', EVERYONE),
    ('name.givenName eq "FRANK"', {"frank"}),
    ('name.familyName eq "SMITH"', {"alice", "carol"}),
    # Case-exact strings (externalId): LIKE folds ASCII case on SQLite, and must not here.
    ('externalId eq "ext-A1"', {"alice"}),
    ('externalId eq "EXT-A1"', set()),
    ('externalId ne "ext-A1"', but("alice")),
    ('externalId co "xt-"', {"alice", "carol", "frank"}),
    ('externalId co "XT-"', {"bob", "grace"}),
    ('externalId sw "EXT"', {"bob", "grace"}),
    ('externalId sw "ext"', {"alice", "carol", "frank"}),
    ('externalId ew "b2"', {"bob"}),
    ('externalId ew "B2"', set()),
    ('externalId ew "ext-A1"', {"alice"}),
    ('externalId sw "ext-A1"', {"alice"}),
    ('externalId co "ext-A1"', {"alice"}),
    ('externalId ew "xext-A1"', set()),
    ('externalId ge "ext-c3" and externalId sw "ext"', {"carol", "frank"}),
    ('externalId lt "ext-c3" and externalId sw "ext"', {"alice"}),
    # LIKE metacharacters and the escape character are plain characters of a value.
    ('displayName co "50%_off"', {"sale"}),
    ('displayName co "%"', {"sale"}),
    ('displayName co "_"', {"sale"}),
    ('displayName sw "50%"', {"sale"}),
    ('name.familyName co "r_s"', {"sale"}),
    ('externalId ew "%_off"', {"sale"}),
    ('externalId co "_"', {"sale"}),
    ('externalId co "/"', {"slash"}),
    ('externalId co "\\\\"', {"slash"}),
    ('externalId eq "a/b\\\\c"', {"slash"}),
    ('externalId sw "a/"', {"slash"}),
    ('userName co "%"', {"sale"}),
    # JSON string escapes.
    ('displayName eq "say \\"hi\\"/bye"', {"slash"}),
    ('displayName eq "say \\"hi\\"\\/bye"', {"slash"}),
    ('displayName co "\\u0022HI\\u0022"', {"slash"}),
    ('name.givenName eq "Zo\\u00eb"', {"slash"}),
    ('name.givenName eq "Zo\u00eb"', {"slash"}),
    ('name.familyName eq "o\'brien"', {"slash"}),
    # pr, eq null / ne null, and ne matching NULL (rows without a person are NULLs of the outer join).
    ('displayName pr', {"alice", "bob", "sale", "decoy", "slash", "frank", "grace"}),
    ('not (displayName pr)', {"carol", "dave", "eve"}),
    ('displayName eq null', {"carol", "dave", "eve"}),
    ('displayName ne null', {"alice", "bob", "sale", "decoy", "slash", "frank", "grace"}),
    ('externalId pr', but("dave", "eve")),
    ('name.familyName pr', but("dave", "eve")),
    ('name.familyName ne "smith"', but("alice", "carol")),
    ('not (name.familyName eq "smith")', but("alice", "carol")),
    ('name.familyName lt "k"', {"grace", "bob"}),
    ('not (name.familyName lt "k")', but("grace", "bob")),
    ('name pr', but("eve")),
    ('not (name pr)', {"eve"}),
    ('name[givenName eq "alice" and familyName eq "smith"]', {"alice"}),
    ('name[givenName eq "carol" and familyName eq "jones"]', set()),
    ('name[givenName sw "a" or givenName sw "b"].familyName pr', {"alice", "bob"}),
    # Booleans.
    ('active eq true', but("carol", "eve")),
    ('active eq false', {"carol", "eve"}),
    ('ACTIVE EQ FALSE', {"carol", "eve"}),
    ('active ne true', {"carol", "eve"}),
    ('active ne false', but("carol", "eve")),
    ('active pr', EVERYONE),
    ('active eq null', set()),
    # Datetimes: instants, offsets, fractions; a value without an offset is UTC.
    ('meta.created gt "2024-01-05T00:00:00Z"', {"sale", "decoy", "slash", "frank", "grace"}),
    ('meta.created ge "2024-01-05T00:00:00Z"', {"eve", "sale", "decoy", "slash", "frank", "grace"}),
    ('meta.created lt "2024-01-02T00:00:00Z"', {"alice"}),
    ('meta.created le "2024-01-02T00:00:00Z"', {"alice", "bob"}),
    ('meta.created le "2024-01-02T00:00:00.000000Z"', {"alice", "bob"}),
    ('meta.created lt "2024-01-02T00:00:00.000000001Z"', {"alice", "bob"}),
    ('meta.created eq "2024-01-08T12:30:00.123456Z"', {"slash"}),
    ('meta.created eq "2024-01-08t12:30:00.123456z"', {"slash"}),
    ('meta.created eq "2024-01-08T14:30:00.123456+02:00"', {"slash"}),
    ('meta.created eq "2024-01-08T12:30:00.123Z"', set()),
    ('meta.created eq "2024-01-08T12:30:00.12345600Z"', {"slash"}),
    ('meta.created eq "2024-01-08T12:30:00.1234561Z"', set()),
    ('meta.created ne "2024-01-08T12:30:00.1234561Z"', EVERYONE),
    ('meta.created gt "2024-01-01T23:59:59.9999999Z"', but("alice")),
    ('meta.created ge "2024-01-01T23:59:59.9999999Z"', but("alice")),
    ('meta.created le "2024-01-02T00:00:00.0000001Z"', {"alice", "bob"}),
    ('meta.created ne "2024-01-01T00:00:00Z"', but("alice")),
    ('meta.created gt "2025-06-01T00:00:00Z"', {"grace"}),
    ('meta.created gt "2025-06-01T02:00:00+02:00"', {"grace"}),
    ('meta.created gt "2024-01-31T23:00:00-01:00"', {"frank", "grace"}),
    ('meta.created lt "2024-01-01T00:00:01"', {"alice"}),
    ('meta.created pr', EVERYONE),
    ('meta.lastModified ge "2024-01-01T01:00:00Z" and meta.lastModified lt "2024-01-02T00:00:00Z"', {"alice"}),
    ('meta[created lt "2024-01-03T00:00:00Z" and lastModified gt "2024-01-01T01:00:00Z"]', {"bob"}),
    # ids: compared as strings, exactly; an integer column is compared as a number.
    ('id eq "{alice}"', {"alice"}),
    ('id ne "{alice}"', but("alice")),
    ('id eq "0{alice}"', set()),
    ('id eq "{alice}.0"', set()),
    ('id eq " {alice}"', set()),
    ('id eq "abc"', set()),
    ('id ne "abc"', EVERYONE),
    ('id eq "99999999999999999999999"', set()),
    ('id eq "-1"', set()),
    ('id pr', EVERYONE),
    ('id sw "{alice}" and id ew "{alice}"', {"alice"}),
    # The enterprise extension and URN-qualified names (case-insensitive).
    (ENTERPRISE + 'employeeNumber eq "E-001"', {"alice"}),
    (ENTERPRISE + 'department eq "ENGINEERING"', {"alice", "bob", "grace"}),
    (ENTERPRISE.upper() + 'DEPARTMENT eq "sales"', {"carol", "frank"}),
    (ENTERPRISE + 'manager.value eq "{alice}"', {"bob", "carol"}),
    ('manager.value pr', {"bob", "carol"}),
    ('not (manager.value eq "{alice}")', but("bob", "carol")),
    ('employeeNumber sw "E-00"', {"alice", "bob", "carol"}),
    (CORE + 'userName sw "alice"', {"alice"}),
    (CORE.upper() + 'USERNAME sw "alice"', {"alice"}),
    (CORE + 'name.givenName eq "alice"', {"alice"}),
    (CORE + 'emails[type eq "home"]', {"alice", "bob"}),
    # Logic: not > and > or, parentheses.
    ('userName sw "alice" or userName sw "bob" and active eq false', {"alice"}),
    ('(userName sw "alice" or userName sw "bob") and active eq true', {"alice", "bob"}),
    ('active eq false or userName sw "alice" and userName sw "bob"', {"carol", "eve"}),
    ('userName sw "alice" and userName sw "bob" or active eq false', {"carol", "eve"}),
    ('not (active eq true) and userName ew ".com"', {"eve"}),
    ('not (active eq true and userName ew ".com")', {"carol", "dave", "eve"}),
    ('not (not (active eq false))', {"carol", "eve"}),
    ('NOT (active eq true) OR userName sw "alice"', {"alice", "carol", "eve"}),
    ('((((userName eq "alice@example.com"))))', {"alice"}),
    ('name.familyName eq "smith" and not (name.givenName eq "carol")', {"alice"}),
    ('(active eq false)or(userName sw "alice")', {"alice", "carol", "eve"}),
    ('not(active eq true)', {"carol", "eve"}),
    ('userName eq "nobody@example.com" or ' * 30 + 'userName eq "alice@example.com"', {"alice"}),
    ('  userName  pr\t and\n active  eq  true  ', but("carol", "eve")),
    # Multi-valued emails (two rows: work = accounts.email, home = people.secondary_email).
    ('emails[type eq "work"]', EVERYONE),
    ('emails[type eq "home"]', {"alice", "bob"}),
    ('not (emails[type eq "home"])', but("alice", "bob")),
    ('emails[type eq "other"]', set()),
    ('emails.type eq "home"', {"alice", "bob"}),
    ('emails pr', EVERYONE),
    ('emails ew ".net"', {"alice", "dave"}),
    ('emails.value ew ".NET"', {"alice", "dave"}),
    ('emails[type eq "home" and value ew ".net"]', {"alice"}),
    ('emails[type eq "work" and value ew ".net"]', {"dave"}),
    ('emails[type eq "work" and value co "example.org"]', {"carol"}),
    ('emails[type eq "work" and primary eq true].value eq "BOB.JONES@example.com"', {"bob"}),
    ('emails[type eq "work" and primary eq true].value eq "bobby@home.example"', set()),
    ('emails[primary eq false].value co "home"', {"alice", "bob"}),
    ('emails[primary eq false].value co "bobby"', {"bob"}),
    ('emails[primary eq true].value co "home"', set()),
    ('emails[not (value co ".com")]', {"alice", "bob", "carol", "dave"}),
    ('emails[type eq "work" and not (value co ".com")]', {"carol", "dave"}),
    ('emails[type eq "work"].value co "ORG"', {"carol"}),
    ('emails[TYPE EQ "work"].VALUE CO "org"', {"carol"}),
    ('emails[(type eq "home" or type eq "work") and value sw "alice."]', {"alice"}),
    ('emails[type eq "home"] and active eq true', {"alice", "bob"}),
    ('emails.value eq null', set()),
    ('emails.primary eq false', {"alice", "bob"}),
]


@pytest.mark.parametrize("template, expected", USER_CASES, ids=[case[0][:80] for case in USER_CASES])
def test_user_filters(world, template, expected):
    assert world.find_users(template) == expected


GROUP_CASES = [
    ('displayName eq "admins"', {"admins"}),
    ('displayName sw "S"', {"sales"}),
    ('displayName co "team" or displayName ew "TY"', {"sales", "empty"}),
    ('externalId eq "g-1"', {"admins"}),
    ('externalId eq "G-1"', set()),
    ('externalId ne "g-1"', {"sales", "empty"}),
    ('externalId pr', {"admins", "empty"}),
    (CORE_GROUP + ':displayName eq "Empty"', {"empty"}),
    ('id eq "{group_sales}"', {"sales"}),
    ('members[value eq "{alice}"]', {"admins"}),
    ('members.value eq "{carol}"', {"sales"}),
    ('members eq "{frank}"', {"sales"}),
    ('members pr', {"admins", "sales"}),
    ('not (members pr)', {"empty"}),
    ('members eq null', {"empty"}),
    ('members ne null', {"admins", "sales"}),
    ('members[type eq "User" and value eq "{bob}"]', {"admins"}),
    ('members[type eq "user"]', {"admins", "sales"}),
    ('members[type eq "Group"]', set()),
    ('members[display co "CAROL"]', {"sales"}),
    ('members.display sw "alice"', {"admins"}),
    ('members[value eq "{alice}"] and members[value eq "{bob}"]', {"admins"}),
    ('members[value eq "{alice}" and value eq "{bob}"]', set()),
    ('members[value eq "{alice}" or value eq "{carol}"]', {"admins", "sales"}),
    ('members[value eq "abc"]', set()),
    ('members.value ne "{alice}"', {"admins", "sales"}),
    ('not (members.value eq "{alice}")', {"sales", "empty"}),
    ('members[not (value eq "{alice}")].display ew ".com"', {"admins", "sales"}),
    ('members[value eq "{carol}"].display ew ".org"', {"sales"}),
    ('members[value eq "{carol}"].display ew ".com"', set()),
    ('displayName eq "Admins" and not (members[value eq "{carol}"])', {"admins"}),
]


@pytest.mark.parametrize("template, expected", GROUP_CASES, ids=[case[0][:80] for case in GROUP_CASES])
def test_group_filters(world, template, expected):
    assert world.find_groups(template) == expected


def alternating(leaf, depth, first="or"):
    """`leaf or (leaf and (leaf or (...)))`, `depth` parentheses deep: the most nested SQL a
    filter of that depth makes (and/or alternating at every level)."""
    text = leaf
    other = {"or": "and", "and": "or"}
    operator = first if depth % 2 else other[first]
    for _ in range(depth):
        text = f"{leaf} {operator} ({text})"
        operator = other[operator]
    return text


def test_nesting_up_to_the_limit_is_fine(world):
    deep = "(" * MAX_DEPTH + 'userName sw "alice"' + ")" * MAX_DEPTH
    assert world.find_users(deep) == {"alice"}
    nots = "not (" * (MAX_DEPTH - 1) + "emails[" + 'type eq "home"' + "]" + ")" * (MAX_DEPTH - 1)
    assert world.find_users(nots) == {"carol", "dave", "eve", "sale", "decoy", "slash", "frank", "grace"}


@pytest.mark.parametrize("first", ["or", "and"])
@pytest.mark.parametrize("inner", range(MAX_DEPTH))
def test_the_deepest_filters_run_on_the_database(world, first, inner):
    """SQLite's parser overflows on SQL nesting and/or some 25-30 levels deep: every filter
    within MAX_DEPTH, the worst shape (alternating at every level, a value path at the bottom
    alternating inside too), runs on both databases."""
    outer = MAX_DEPTH - 1 - inner
    user_inner = alternating('value co "@"', inner, first)
    user_leaf = f'emails[{user_inner}].value co "example"'
    assert world.find_users(alternating(user_leaf, outer, first)) == EVERYONE
    assert world.find_users(alternating(f'name[{alternating("givenName pr", inner, first)}].familyName pr',
                                        outer, first)) == but("dave", "eve")
    if outer >= 2:
        negated = "not (" + alternating(f"not (emails[{user_inner}])", outer - 2, first) + ")"
        assert world.find_users(negated) == EVERYONE
    group_inner = alternating('display co "@"', inner, first)
    group_leaf = f"members[{group_inner}]"
    assert world.find_groups(alternating(group_leaf, outer, first)) == {"admins", "sales"}


def test_a_filter_of_the_maximum_length(world):
    filter_text = 'userName eq "alice@example.com"'
    filter_text += " or userName pr and active eq false" * ((MAX_LENGTH - len(filter_text)) // 35)
    assert len(filter_text) <= MAX_LENGTH
    assert world.find_users(filter_text) == {"alice", "carol", "eve"}


def test_values_are_bound_parameters_never_sql_text():
    expression = compile_filter('userName eq "x\'; DROP TABLE accounts; --" or displayName co "50%"', USER)
    compiled = select(Account.id).outerjoin(Person).where(expression).compile()
    assert "DROP" not in str(compiled) and "50" not in str(compiled)
    assert "x'; DROP TABLE accounts; --" in compiled.params.values()
    assert "%50/%%" in compiled.params.values()


# --- sorting


def test_sort_by_a_case_insensitive_string(world):
    assert world.sorted_users("userName") == ["alice", "bob", "carol", "dave", "eve", "frank", "grace", "sale",
                                              "decoy", "slash"]
    assert world.sorted_users(CORE + "USERNAME", descending=True) == [
        "slash", "decoy", "sale", "grace", "frank", "eve", "dave", "carol", "bob", "alice"]


def test_sort_puts_missing_values_last_ascending_and_first_descending(world):
    assert world.sorted_users("name.familyName") == ["grace", "bob", "slash", "alice", "carol", "frank", "sale",
                                                     "decoy", "dave", "eve"]
    assert world.sorted_users("name.familyName", descending=True) == [
        "dave", "eve", "decoy", "sale", "frank", "alice", "carol", "slash", "bob", "grace"]
    assert world.sorted_users(ENTERPRISE + "manager.value")[:2] == ["bob", "carol"]


def test_sort_by_datetimes_and_booleans(world):
    assert world.sorted_users("meta.created", descending=True) == [
        "grace", "frank", "slash", "decoy", "sale", "eve", "dave", "carol", "bob", "alice"]
    assert world.sorted_users("active")[:2] == ["carol", "eve"]
    assert world.sorted_users("id") == sorted(PEOPLE, key=world.users.get)


def test_sort_by_a_case_exact_string_is_not_lowered():
    assert "lower" not in str(compile_sort("externalId", USER))
    assert "lower" in str(compile_sort("displayName", USER))
    assert "lower" not in str(compile_sort("id", USER))


@pytest.mark.parametrize("sort_by", [
    "emails", "emails.value", "name", "members", "nope", "name.nope", 'userName eq "x"', "", "  ", "userName,id",
    "urn:nope:userName", "userName[type eq \"work\"]", "-userName", "userName.", None, 42,
])
def test_sort_refusals(sort_by):
    with pytest.raises(InvalidSort) as raised:
        compile_sort(sort_by, {**USER, "members": GROUP["members"]}, USER_SCHEMAS)
    assert isinstance(raised.value, InvalidFilter) and str(raised.value)


# --- refusals

REFUSALS = [
    # Syntax.
    "", "   ", "userName", "userName eq", 'userName eq "x" and', 'userName eq "x" or', 'and userName eq "x"',
    'userName eq "x" userName eq "y"', 'userName eq "x" and and userName pr', 'userName pr "x"', '"x" eq userName',
    'userName regex "x"', 'userName equals "x"', "userName eq x", "userName eq 'x'", 'userName eq "x',
    'userName eq "\\q"', 'userName eq "a\x01"', 'userName eq "a\nb"', 'userName eq "\\u12"', 'userName eq "x" & b',
    'userName eq "x"\x00', "userName eq 01", "userName eq 1.5e", "userName eq -", "userName eq .5", "userName eq NaN",
    "userName eq Infinity", "userName eq True1", "(userName pr", "userName pr)", "()", "not ()",
    'not userName eq "x"', 'not (userName eq "x"', 'not (userName eq "x"))', "userName.", ".userName pr",
    "user..name pr", "userName. pr", "user@name pr", "9userName pr", "userName:pr", "urn: pr", ":userName pr",
    'emails[type eq "work"', 'emails[type eq "work"]]', 'emails[]', "emails[", "emails]", "[type pr]",
    'emails[emails[type eq "work"]]', 'emails[value[type eq "x"]]', 'emails[type eq "work"].value',
    'emails[type eq "work"] .value eq "x"', 'emails[type eq "work"].value.x eq "y"',
    'emails[type eq "work"]value eq "x"', 'emails[type eq "work"] pr', 'emails[type eq "work"] eq "x"',
    'emails[name.givenName eq "x"]', f'emails[{CORE}type eq "work"]', 'emails[type eq "work"][type pr]',
    # What the mapping does not hold.
    'nope eq "x"', 'name.nope eq "x"', 'name eq "x"', 'name co "x"', 'name.givenName.extra eq "x"',
    'emails.nope eq "x"', 'emails[nope eq "x"]', 'emails[type eq "work"].nope eq "x"', 'emails.value.x pr',
    'userName[value eq "x"]', 'name.givenName[value eq "x"]', 'emails.value[type eq "work"]',
    'urn:unknown:schema:userName eq "x"', f'{CORE_GROUP}:userName eq "x"', f'{ENTERPRISE_USER}:nope eq "x"',
    f'{CORE_USER}userName eq "x"', 'members[value eq "1"]', 'password eq "x"', "meta pr and meta eq 1",
    # Operators that do not fit the type, values of the wrong type.
    'userName eq 1', 'userName eq true', 'userName gt null', 'userName co null', 'userName sw null',
    'active gt true', 'active le false', 'active eq "true"', 'active co "t"', 'active eq 1', 'active eq "1"',
    'meta.created eq "yesterday"', 'meta.created gt "2024-13-01T00:00:00Z"', 'meta.created gt "2024-01-01"',
    'meta.created gt "2024-01-01T00:00Z"', 'meta.created gt "2024-02-30T00:00:00Z"',
    'meta.created gt "2024-01-01T24:00:00Z"', 'meta.created gt "2024-01-01T00:00:60Z"',
    'meta.created co "2024"', 'meta.created sw "2024"', 'meta.created gt 5', 'meta.created gt true',
    'meta.created gt "2024-01-01T00:00:00+24:00"', 'meta.created gt "2024-01-01T00:00:00+0100"',
    'meta.created lt "9999-12-31T23:59:59-01:00"', 'meta.created gt "0001-01-01T00:00:00+01:00"',
    'meta.created gt "\uff12024-01-01T00:00:00Z"', 'meta.created gt " 2024-01-01T00:00:00Z"',
    'id eq 5', 'id eq true', 'id gt null', 'manager.value eq 1', 'emails.primary gt true',
    'emails[primary eq "true"]', 'emails[value eq 1]', 'emails eq true', 'emails[type co null]',
    # Values PostgreSQL cannot hold.
    'userName eq "\\u0000"', 'userName co "a\\u0000b"', 'userName eq "\\ud800"', 'userName eq "\\udc00x"',
    'userName eq "\ud800"',
    # Limits.
    "(" * (MAX_DEPTH + 1) + "userName pr" + ")" * (MAX_DEPTH + 1),
    "not (" * (MAX_DEPTH + 1) + "userName pr" + ")" * (MAX_DEPTH + 1),
    "(" * (MAX_DEPTH) + 'emails[type eq "work"]' + ")" * (MAX_DEPTH),
    "(" * 10000,
    "userName pr and " * 300 + "userName pr",
    'userName eq "' + "x" * MAX_LENGTH + '"',
]


@pytest.mark.parametrize("text", REFUSALS, ids=[repr(text[:60]) for text in REFUSALS])
def test_refusals(text):
    with pytest.raises(InvalidFilter) as raised:
        compile_filter(text, USER, USER_SCHEMAS)
    assert type(raised.value) is InvalidFilter
    message = str(raised.value)
    assert message and len(message) < 400 and message.isprintable()


@pytest.mark.parametrize("text", [None, b"userName pr", 42, ["userName pr"]])
def test_a_filter_that_is_no_string(text):
    with pytest.raises(InvalidFilter):
        compile_filter(text, USER)


def test_messages_say_what_is_wrong():
    def message(text, mapping=USER):
        with pytest.raises(InvalidFilter) as raised:
            compile_filter(text, mapping, USER_SCHEMAS)
        return str(raised.value)

    assert "'nope' is not an attribute that can be filtered on" in message('nope eq "x"')
    assert "operator 'regex' is not supported" in message('userName regex "x"')
    assert "gt does not apply to 'active', a boolean attribute" in message("active gt true")
    assert "'active' is a boolean attribute" in message('active eq "true"')
    assert "position 13" in message('userName eq x')
    assert "deep" in message("(" * 60 + "userName pr" + ")" * 60)
    assert "longer than 4096" in message(" " * 5000)
    assert "'\\u0001'" in message("userName eq \x01")


# --- fuzzing: nothing but InvalidFilter, and what compiles runs

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VOCABULARY = [
    "userName", "USERNAME", "name.givenName", "name", "name.familyName", "displayName", "externalId", "active",
    "emails", "emails.value", "emails.type", "emails.primary", "value", "type", "primary", "givenName", "id",
    "meta.created", "meta.lastModified", "meta", "manager.value", "employeeNumber", "members", "members.value",
    "members.display", "display", "nope", CORE + "userName", ENTERPRISE + "department", CORE_GROUP + ":displayName",
    "urn:x:y", "eq", "ne", "co", "sw", "ew", "pr", "gt", "ge", "lt", "le", "EQ", "and", "or", "not", "AND", "Or",
    "NOT", "(", ")", "[", "]", "].value", "].type", ".value", "true", "false", "null", "0", "-1", "1.5", "1e999",
    "99999999999999999999999", '"x"', '""', '"alice@example.com"', '"%"', '"_"', '"/"', '"\\\\"', '"\\u0000"',
    '"\\ud800"', '"\\uDC00"', '"2024-01-01T00:00:00Z"', '"2024-01-01T00:00:00+23:59"', '"9999-12-31T23:59:59-23:59"',
    '"0001-01-01T00:00:00+00:01"', '"1"', '"work"', '"User"', '"', "'", "\\", ".", ":", ",", "$ref", "-", "\x00",
    "\ud800", "\u00e9", "\t",
]
tokens = st.lists(st.sampled_from(VOCABULARY), max_size=30)
token_filters = st.one_of(tokens.map(" ".join), tokens.map("".join))
any_text = st.one_of(st.text(max_size=200), st.text(alphabet=st.characters(exclude_categories=()), max_size=60),
                     st.text(alphabet='()[]" .:eqnotandrpwsx\\u0', max_size=80))


def must_compile_or_refuse(world, text):
    for mapping, schemas, query in ((USER, USER_SCHEMAS, world.user_query),
                                    (GROUP, GROUP_SCHEMAS, lambda e: select(Group.id).where(e))):
        try:
            expression = compile_filter(text, mapping, schemas)
        except InvalidFilter as invalid:
            assert str(invalid)
            continue
        world.run(query(expression))  # the database takes whatever compiled


def test_random_text_is_refused_or_runs(world):
    @FUZZ
    @given(text=any_text)
    def check(text):
        must_compile_or_refuse(world, text)

    check()


def test_random_token_sequences_are_refused_or_run(world):
    @FUZZ
    @given(text=token_filters)
    def check(text):
        must_compile_or_refuse(world, text)

    check()


PATHS = ["userName", "externalId", "active", "displayName", "name.givenName", "name", "emails", "emails.value",
         "emails.type", "emails.primary", "meta.created", "meta.lastModified", "id", "manager.value",
         ENTERPRISE + "department", "employeeNumber", "members", "members.value", "members.display", "members.type",
         "nope"]
SUB_ATTRIBUTES = ["value", "type", "primary", "display", "givenName", "created", "nope"]
OPERATOR_NAMES = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"]
values = st.one_of(
    st.text(max_size=20).map(json.dumps),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=8).map(json.dumps),
    st.sampled_from(["%", "_", "/", "\\", "\u0000", "'", "1", "work", "User", "alice@example.com"]).map(json.dumps),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda moment: json.dumps(moment.isoformat())),
    st.datetimes().map(lambda moment: json.dumps(moment.isoformat(timespec="microseconds"))),
    st.integers(-2 ** 70, 2 ** 70).map(str), st.integers(-2 ** 70, 2 ** 70).map(lambda n: json.dumps(str(n))),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["true", "false", "null", "TRUE", "Null"]),
)


@st.composite
def comparisons(draw, names):
    op = draw(st.sampled_from(OPERATOR_NAMES))
    return f"{draw(names)} {op}" + ("" if op == "pr" else f" {draw(values)}")


@st.composite
def value_paths(draw):
    inner = draw(st.recursive(comparisons(st.sampled_from(SUB_ATTRIBUTES)), logic, max_leaves=3))
    then = draw(st.one_of(st.just(""), comparisons(st.sampled_from(SUB_ATTRIBUTES)).map(lambda c: "." + c)))
    return f"{draw(st.sampled_from(PATHS))}[{inner}]{then}"


def logic(children):
    return st.one_of(st.tuples(children, st.sampled_from(["and", "or", "AND"]), children).map(" ".join),
                     children.map(lambda child: f"not ({child})"), children.map(lambda child: f"({child})"))


well_formed = st.recursive(st.one_of(comparisons(st.sampled_from(PATHS)), value_paths()), logic, max_leaves=6)


def test_well_formed_filters_with_random_values_are_refused_or_run(world):
    """Filters the grammar accepts, any attribute, operator and value: refused (a type that does
    not fit, an unknown name) or run on the database without an error."""
    compiled = []

    @FUZZ
    @given(text=well_formed)
    def check(text):
        for mapping, schemas, query in ((USER, USER_SCHEMAS, world.user_query),
                                        (GROUP, GROUP_SCHEMAS, lambda e: select(Group.id).where(e))):
            try:
                expression = compile_filter(text, mapping, schemas)
            except InvalidFilter:
                continue
            world.run(query(expression))
            compiled.append(text)

    check()
    assert len(compiled) > 50  # the values and names fit often enough for this to test the SQL


def test_random_sort_by_is_refused_or_sorts(world):
    @FUZZ
    @given(text=st.one_of(token_filters, any_text))
    def check(text):
        try:
            expression = compile_sort(text, USER, USER_SCHEMAS)
        except InvalidSort:
            return
        world.run(select(Account.id).outerjoin(Person, Account.person_id == Person.id)
                  .order_by(*sort_order_clauses(expression)))

    check()


# --- logic: what any combination of filters finds is the set algebra of what its parts find

LEAVES = [template for template, _ in USER_CASES if len(template) < 120 and "{" not in template] + [
    'id eq "{alice}"', 'manager.value eq "{alice}"']


def leaf_filters():
    return st.sampled_from(LEAVES).map(lambda template: ("leaf", template))


combinations = st.recursive(
    leaf_filters(),
    lambda children: st.one_of(
        st.tuples(st.just("and"), children, children),
        st.tuples(st.just("or"), children, children),
        st.tuples(st.just("not"), children),
    ),
    max_leaves=6,
)
PRECEDENCE = {"or": 1, "and": 2, "not": 3, "leaf": 3}


def render(node, parent=0):
    """The filter text of `node`, parenthesized only where precedence requires it."""
    kind = node[0]
    if kind == "leaf":
        text = node[1]
        # A leaf with an and/or of its own is parenthesized to stay one operand.
        return f"({text})" if re.search(r"\b(and|or)\b", text, re.IGNORECASE) else text
    if kind == "not":
        return f"not ({render(node[1])})"
    text = f"{render(node[1], PRECEDENCE[kind])} {kind} {render(node[2], PRECEDENCE[kind] + 1)}"
    return f"({text})" if PRECEDENCE[kind] < parent else text


def expected(world, node, leaves):
    kind = node[0]
    if kind == "leaf":
        if node[1] not in leaves:
            leaves[node[1]] = world.find_users(node[1])
        return leaves[node[1]]
    if kind == "not":
        return EVERYONE - expected(world, node[1], leaves)
    left, right = expected(world, node[1], leaves), expected(world, node[2], leaves)
    return left & right if kind == "and" else left | right


def test_combinations_are_the_set_algebra_of_their_parts(world):
    leaves = {}

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(node=combinations)
    def check(node):
        text = render(node)
        found = world.find_users(text)
        assert found == expected(world, node, leaves), text
        assert world.find_users(f"not ({text})") == EVERYONE - found, text

    check()
