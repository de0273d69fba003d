"""A list request runs a fixed number of SQL statements, whatever the page size or includes."""
import pytest

from iam.extensions import db
from iam.models import Account, AccountRole, Organization, Person
from tests.helpers import assert_jsonapi

INCLUDES = "roles,person,organization"
# authentication 1 (session, account, key, the account's roles and its groups' roles in one
# statement), the page 1 (its person and organization joined to it: to-ones whose key is the
# account's), roles 1 (a to-many: a query of its own).
EXPECTED_STATEMENTS = 3


@pytest.fixture
def thousand_accounts(app, admin_account):
    """1000 accounts (plus the admin), each with a person, an organization and two roles."""
    with app.app_context():
        orgs = [Organization(name=f"Org {i}", slug=f"org-{i}") for i in range(10)]
        db.session.add_all(orgs)
        db.session.flush()
        for i in range(1000):
            org = orgs[i % 10]
            person = Person(organization_id=org.id, first_name=f"P{i}", facets=[])
            account = Account(email=f"bulk{i:04d}@example.com", organization_id=org.id, person=person,
                              roles=[AccountRole(name="viewer", scopes={}, info={}),
                                     AccountRole(name=f"r{i % 7}", scopes={"organization": [org.id]}, info={})])
            db.session.add(account)
        db.session.commit()


@pytest.mark.parametrize("count", [False, True])
def test_page_of_1000_with_includes_costs_what_a_page_of_1_costs(admin, thousand_accounts, count_queries, count):
    # Newest first: the page of one holds a bulk account, which has something on every path
    # (a path with nothing to load costs no statement at all).
    params = {"included": INCLUDES, "count": str(count).lower(), "sort": "-id"}
    with count_queries() as one:
        small = assert_jsonapi(admin.get("/accounts", {**params, "page[size]": "1"}), 200)
    with count_queries() as thousand:
        big = assert_jsonapi(admin.get("/accounts", {**params, "page[size]": "1000"}), 200)

    assert len(small["data"]) == 1 and len(big["data"]) == 1000
    # Everything asked for really was included: the page holds the 1000 bulk accounts (a
    # person and two roles each), not the admin (the oldest).
    included_types = [item["type"] for item in big["included"]]
    assert included_types.count("people") == 1000
    assert included_types.count("organizations") == 10
    assert included_types.count("account_roles") == 2 * 1000
    expected = EXPECTED_STATEMENTS + (1 if count else 0)
    assert len(one) == len(thousand) == expected, (one, thousand)
    if count:
        assert big["meta"]["count"] == 1001


def test_nested_include_is_one_statement_per_path(admin, thousand_accounts, count_queries):
    with count_queries() as statements:
        body = assert_jsonapi(admin.get("/account_roles", {"page[size]": "1000", "included": "account.person"}), 200)
    assert len(body["data"]) == 1000
    # authentication 1, the page with each role's account joined 1, account.person 1 (below a
    # joined path: a query of its own)
    assert len(statements) == 3, statements
    assert "JOIN accounts" in statements[1] and "FROM people" in statements[2], statements
