"""GET /accounts filters (API.md, "### accounts"): each filter gives exactly the right rows.

Every test builds the same small world (two organizations, a unit tree, people, accounts
and roles) and compares the e-mails found, never their order. The admin fixture's own
account is left out of every comparison.
"""
import hashlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from werkzeug.datastructures import MultiDict

from iam.extensions import db
from iam.models import Account
from tests.helpers import assert_jsonapi

ADMIN = "admin@example.com"
NOW = datetime.now(timezone.utc)
PAST = NOW - timedelta(days=10)
FUTURE = NOW + timedelta(days=10)

EMAILS = {
    "alice": "alice@acme.test",
    "bob": "bob@acme.test",
    "carol": "Carol.Mixed@Acme.test",
    "dave": "dave@acme.test",
    "erin": "erin@other.test",
    "percent": "per%cent@other.test",
    "under": "under_score@other.test",
}
NAMES = {email: name for name, email in EMAILS.items()}
EVERYONE = set(EMAILS)


def ts(year, month=1, day=1):
    return datetime(year, month, day, tzinfo=timezone.utc)


def set_reset_token(app, account, raw, expires_at):
    """What a reset request stores: the SHA-256 digest of the raw token, and its expiry."""
    with app.app_context():
        row = db.session.get(Account, account.id)
        row.password_reset_token_digest = hashlib.sha256(raw.encode()).hexdigest()
        row.password_reset_token_expires_at = expires_at
        db.session.commit()


@pytest.fixture
def world(app, factory):
    acme, other = factory.organization(name="Acme"), factory.organization(name="Other")
    sales = factory.unit(acme, "sales")
    emea = factory.unit(acme, "emea", parent=sales)
    paris = factory.unit(acme, "paris", parent=emea)
    support = factory.unit(acme, "support")
    people = {
        "alice": factory.person(acme, first_name="Alice", last_name="Smith", organizational_unit_id=emea.id),
        "bob": factory.person(acme, first_name="Bob", last_name="Jones", organizational_unit_id=paris.id),
        "carol": factory.person(acme, first_name="Carol", last_name="Smithers", organizational_unit_id=sales.id),
        "dave": factory.person(acme, first_name="Dave", last_name="Brown", organizational_unit_id=support.id),
        "erin": factory.person(other, first_name="Erin", last_name="Smith"),
    }
    org_of = {"alice": acme, "bob": acme, "carol": acme, "dave": acme, "erin": other}
    extra = {
        "alice": dict(created_at=ts(2024, 1, 1)),
        "bob": dict(created_at=ts(2024, 6, 1), account_type="service_account", auth_type="sso",
                    enabled=False, expires_at=ts(2030, 1, 1)),
        "carol": dict(created_at=ts(2025, 1, 1), account_type="local_account", auth_type="api_key",
                      expires_at=ts(2020, 1, 1)),
        "dave": dict(created_at=ts(2025, 6, 1)),
        "erin": dict(created_at=ts(2023, 1, 1)),
    }
    accounts = {}
    for name, email in EMAILS.items():
        if name in people:
            accounts[name] = factory.account(email=email, person_id=people[name].id,
                                             organization_id=org_of[name].id, **extra[name])
        else:
            accounts[name] = factory.account(email=email, created_at=ts(2022, 1, 1))
    factory.role(accounts["alice"], "editor")
    factory.role(accounts["bob"], "editor", not_before=FUTURE)
    factory.role(accounts["carol"], "editor", expires_at=PAST)
    factory.role(accounts["dave"], "viewer")
    factory.role(accounts["erin"], "editor", not_before=PAST, expires_at=FUTURE)
    ids = {name: a.id for name, a in accounts.items()}
    ids.update({f"p_{name}": p.id for name, p in people.items()})
    ids.update(acme=acme.id, other=other.id, sales=sales.id, emea=emea.id, paris=paris.id, support=support.id)
    return SimpleNamespace(accounts=accounts, people=people, ids=ids)


def found(api, params):
    """Names of the accounts a filtered GET /accounts returns (the admin left out)."""
    body = assert_jsonapi(api.get("/accounts", params=MultiDict(params)), 200)
    emails = [item["attributes"]["email"] for item in body["data"]]
    assert len(emails) == len(set(emails))
    return {NAMES[e] for e in emails if e != ADMIN}


# filter under test -> [(query parameters with {placeholders} for ids, expected account names)]
CASES = {
    "id, id__in": [
        ({"filter[id]": "{alice}"}, {"alice"}),
        ({"filter[id__in]": "{alice},{erin}"}, {"alice", "erin"}),
    ],
    "email (case-insensitive)": [
        ({"filter[email]": "ALICE@acme.TEST"}, {"alice"}),
        ({"filter[email]": "carol.mixed@acme.test"}, {"carol"}),
        ({"filter[email]": "nobody@acme.test"}, set()),
    ],
    "account_type, account_type__in, auth_type, enabled": [
        ({"filter[account_type]": "service_account"}, {"bob"}),
        ({"filter[account_type]": "personal_account"}, EVERYONE - {"bob", "carol"}),
        ({"filter[account_type__in]": "service_account,local_account"}, {"bob", "carol"}),
        ({"filter[auth_type]": "sso"}, {"bob"}),
        ({"filter[auth_type]": "api_key"}, {"carol"}),
        ({"filter[enabled]": "false"}, {"bob"}),
        ({"filter[enabled]": "true"}, EVERYONE - {"bob"}),
    ],
    "person_id, organization_id": [
        ({"filter[person_id]": "{p_dave}"}, {"dave"}),
        ({"filter[person_id]": "null"}, {"percent", "under"}),
        ({"filter[organization_id]": "{other}"}, {"erin"}),
        ({"filter[organization_id]": "{acme}"}, {"alice", "bob", "carol", "dave"}),
        ({"filter[organization_id__neq]": "{acme}"}, {"erin", "percent", "under"}),  # NULL rows too
    ],
    "created_at, updated_at, created_at__gte / __lte": [
        ({"filter[created_at]": "2024-06-01T00:00:00.000000Z"}, {"bob"}),
        ({"filter[updated_at]": "2025-01-01T00:00:00Z"}, {"carol"}),
        ({"filter[created_at__gte]": "2024-06-01T00:00:00Z"}, {"bob", "carol", "dave"}),
        ({"filter[created_at__lte]": "2024-06-01T00:00:00Z"}, {"alice", "bob", "erin", "percent", "under"}),
        ({"filter[created_at__gte]": "2024-01-01", "filter[created_at__lte]": "2025-01-01"},
         {"alice", "bob", "carol"}),
    ],
    "expires_at: eq, null, neq, exists, gte, lte": [
        ({"filter[expires_at]": "2030-01-01T00:00:00.000000Z"}, {"bob"}),
        ({"filter[expires_at]": "null"}, EVERYONE - {"bob", "carol"}),
        ({"filter[expires_at__neq]": "null"}, {"bob", "carol"}),
        ({"filter[expires_at__neq]": "2030-01-01T00:00:00Z"}, EVERYONE - {"bob"}),  # NULL rows too
        ({"filter[expires_at__exists]": "true"}, {"bob", "carol"}),
        ({"filter[expires_at__exists]": "false"}, EVERYONE - {"bob", "carol"}),
        ({"filter[expires_at__gte]": "2025-01-01T00:00:00Z"}, {"bob"}),
        ({"filter[expires_at__lte]": "2025-01-01T00:00:00Z"}, {"carol"}),
        ({"filter[expires_at__lte]": "2030-01-01T00:00:00Z"}, {"bob", "carol"}),
    ],
    "ou_accounts (unit and below)": [
        ({"filter[ou_accounts]": "{sales}"}, {"alice", "bob", "carol"}),
        ({"filter[ou_accounts]": "{emea}"}, {"alice", "bob"}),
        ({"filter[ou_accounts]": "{paris}"}, {"bob"}),
        ({"filter[ou_accounts]": "{support}"}, {"dave"}),
        ({"filter[ou_accounts]": "{paris},{support}"}, {"bob", "dave"}),
    ],
    "role_name (valid now)": [
        ({"filter[role_name]": "editor"}, {"alice", "erin"}),
        ({"filter[role_name]": "viewer"}, {"dave"}),
        ({"filter[role_name]": "editor,viewer"}, {"alice", "erin", "dave"}),
        ({"filter[role_name]": "Editor"}, set()),
    ],
    "email__match (literal % and _), __prefix, __suffix": [
        ({"filter[email__match]": "ACME"}, {"alice", "bob", "carol", "dave"}),
        ({"filter[email__match]": "ice@ac"}, {"alice"}),
        ({"filter[email__match]": "%"}, {"percent"}),
        ({"filter[email__match]": "_"}, {"under"}),
        ({"filter[email__match]": "r%c"}, {"percent"}),
        ({"filter[email__match]": "r_s"}, {"under"}),
        ({"filter[email__prefix]": "CAROL."}, {"carol"}),
        ({"filter[email__prefix]": "acme"}, set()),
        ({"filter[email__suffix]": "@OTHER.test"}, {"erin", "percent", "under"}),
        ({"filter[email__suffix]": "other"}, set()),
    ],
    "search (every word, email and names)": [
        ({"filter[search]": "smith"}, {"alice", "carol", "erin"}),
        ({"filter[search]": "SMITH acme"}, {"alice", "carol"}),
        ({"filter[search]": "alice smith"}, {"alice"}),
        ({"filter[search]": "bob smith"}, set()),
        ({"filter[search]": "jones"}, {"bob"}),
        ({"filter[search]": "  other   erin "}, {"erin"}),
    ],
    "relationship path, several filters ANDed": [
        ({"filter[person.last_name__match]": "SMITH"}, {"alice", "carol", "erin"}),
        ({"filter[person.first_name]": "Dave"}, {"dave"}),
        ({"filter[email__match]": "acme", "filter[enabled]": "true", "filter[role_name]": "editor"}, {"alice"}),
        ({"filter[ou_accounts]": "{sales}", "filter[role_name]": "editor"}, {"alice"}),
    ],
}


@pytest.mark.parametrize("cases", CASES.values(), ids=CASES.keys())
def test_filter(admin, world, cases):
    for params, expected in cases:
        params = {key: value.format(**world.ids) for key, value in params.items()}
        assert found(admin, params) == expected, params


def test_id_in_repeated_bracket_form(admin, world):
    params = [("filter[id__in][]", str(world.ids["bob"])), ("filter[id__in][]", str(world.ids["dave"]))]
    assert found(admin, params) == {"bob", "dave"}


def test_created_at_round_trips_exactly(admin, factory):
    """A rendered created_at (microseconds) used as a filter value finds its own row and only it."""
    first, second = factory.account(email="first@acme.test"), factory.account(email="second@acme.test")
    for account in (first, second):
        rendered = assert_jsonapi(admin.get(f"/accounts/{account.id}"), 200)["data"]["attributes"]["created_at"]
        body = assert_jsonapi(admin.get("/accounts", params={"filter[created_at]": rendered}), 200)
        assert [item["id"] for item in body["data"]] == [str(account.id)]


def test_updated_at_round_trips_after_patch(admin, factory):
    account = factory.account(email="patched@acme.test")
    patch = {"data": {"type": "accounts", "id": str(account.id), "attributes": {"enabled": False}}}
    rendered = assert_jsonapi(admin.patch(f"/accounts/{account.id}", patch), 200)["data"]["attributes"]["updated_at"]
    body = assert_jsonapi(admin.get("/accounts", params={"filter[updated_at]": rendered}), 200)
    assert [item["id"] for item in body["data"]] == [str(account.id)]


def test_password_reset_token_matches_raw_token_only(app, admin, world):
    expires = ts(2031, 2, 3) + timedelta(microseconds=123456)
    set_reset_token(app, world.accounts["alice"], "raw-token-for-alice", expires)
    set_reset_token(app, world.accounts["bob"], "raw-token-for-bob", ts(2031, 5, 5))
    assert found(admin, {"filter[password_reset_token]": "raw-token-for-alice"}) == {"alice"}
    assert found(admin, {"filter[password_reset_token]": "raw-token-for"}) == set()
    digest = hashlib.sha256(b"raw-token-for-alice").hexdigest()
    assert found(admin, {"filter[password_reset_token]": digest}) == set()
    assert found(admin, {"filter[password_reset_token_expires_at]": "2031-02-03T00:00:00.123456Z"}) == {"alice"}
    assert found(admin, {"filter[password_reset_token_expires_at__exists]": "true"}) == {"alice", "bob"}


def test_secret_digest_is_not_filterable(admin):
    response = admin.get("/accounts", params={"filter[password_reset_token_digest]": "x"})
    error = assert_jsonapi(response, 400)["errors"][0]
    assert error["source"] == {"parameter": "filter[password_reset_token_digest]"}


def test_ops_script_query_counts_all_matches(admin, world):
    """email__match + created_at__gte + count=true: meta.count is the total, not the page length."""
    params = {"filter[email__match]": "acme.test", "filter[created_at__gte]": "2024-06-01T00:00:00Z",
              "count": "true"}
    body = assert_jsonapi(admin.get("/accounts", params=params), 200)
    assert body["meta"]["count"] == 3
    assert {NAMES[item["attributes"]["email"]] for item in body["data"]} == {"bob", "carol", "dave"}

    body = assert_jsonapi(admin.get("/accounts", params={**params, "page[size]": "2"}), 200)
    assert body["meta"]["count"] == 3
    assert len(body["data"]) == 2
    assert body["links"]["next"] and body["links"]["last"]


def test_role_name_follows_the_validity_window(admin, world, factory):
    """A role that started a moment ago counts; one that starts in an hour does not."""
    now = datetime.now(timezone.utc)
    factory.role(world.accounts["under"], "auditor", not_before=now - timedelta(seconds=5))
    factory.role(world.accounts["percent"], "auditor", not_before=now + timedelta(hours=1))
    assert found(admin, {"filter[role_name]": "auditor"}) == {"under"}
