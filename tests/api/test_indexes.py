"""The filters and sorts the contract names are served by indexes, not by reading every row.

Each test captures the SQL the app really sends for a request and asks the database's own
planner how it would run it. On PostgreSQL sequential scans are switched off for the
EXPLAIN, so the question is "can an index answer this?", not "is one worth it on a table
of a few rows?". SQLite has no trigram indexes: there the substring filters scan, which the
README says (PostgreSQL is the database that scales).
"""
import pytest
from sqlalchemy import event, text

from iam.extensions import db
from tests.helpers import assert_jsonapi


@pytest.fixture
def captured(app):
    """The (statement, parameters) pairs sent while the block runs."""
    from contextlib import contextmanager

    @contextmanager
    def capture():
        sent = []

        def listener(conn, cursor, statement, parameters, context, executemany):
            sent.append((statement, parameters))

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", listener)
        try:
            yield sent
        finally:
            event.remove(engine, "before_cursor_execute", listener)

    return capture


def _plan(app, statement, parameters, bitmap_only=False):
    """The plan of a captured statement. `bitmap_only` also rules out plain index scans (a
    walk of the primary key in ORDER BY id order, filtering as it goes): GIN indexes are
    only ever read by bitmap scans, so what is left shows whether one can serve the filter."""
    with app.app_context():
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                if bitmap_only:
                    conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
                    conn.exec_driver_sql("SET LOCAL enable_indexonlyscan = off")
                rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            else:
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            conn.rollback()
    return "\n".join(" ".join(str(col) for col in row) for row in rows)


def _page_query_plan(app, admin, captured, path, params, table):
    with captured() as sent:
        assert_jsonapi(admin.get(path, params), 200)
    pages = [(s, p) for s, p in sent if f"FROM {table}" in s and "LIMIT" in s.upper()]
    assert pages, [s for s, _ in sent]
    return _plan(app, *pages[-1])


@pytest.fixture
def rows(factory):
    org = factory.organization()
    for n in range(3):
        person = factory.person(org, first_name=f"Ada{n}", last_name="Lovelace", facets=[])
        factory.account(email=f"ada{n}@analytical.example", person_id=person.id, organization_id=org.id)


def test_email_equality_uses_the_case_insensitive_unique_index(app, admin, rows, captured):
    plan = _page_query_plan(app, admin, captured, "/accounts", {"filter[email]": "ADA1@analytical.example"},
                            "accounts")
    assert "uq_accounts_email_lower" in plan, plan


def test_sort_by_creation_uses_its_index(app, admin, rows, captured):
    plan = _page_query_plan(app, admin, captured, "/accounts", {"sort": "-created_at", "page[size]": "10"},
                            "accounts")
    assert "ix_accounts_created_at" in plan, plan


@pytest.mark.parametrize("path, params, table, index", [
    ("/accounts", {"filter[email__match]": "lytical"}, "accounts", "ix_accounts_email_trgm"),
    ("/accounts", {"filter[email__prefix]": "ada1"}, "accounts", "ix_accounts_email_trgm"),
    ("/people", {"filter[first_name__match]": "da1"}, "people", "ix_people_first_name_trgm"),
    ("/people", {"filter[last_name__match]": "lace"}, "people", "ix_people_last_name_trgm"),
])
def test_substring_filters_use_trigram_indexes_on_postgresql(app, admin, rows, captured, dialect,
                                                             path, params, table, index):
    with captured() as sent:
        body = assert_jsonapi(admin.get(path, params), 200)
    assert body["data"], "the filter finds its rows on every database"
    if dialect == "postgresql":
        pages = [(s, p) for s, p in sent if f"FROM {table}" in s and "LIMIT" in s.upper()]
        plan = _plan(app, *pages[-1], bitmap_only=True)
        assert index in plan, plan
    else:
        with app.app_context():
            names = db.session.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")).scalars().all()
        assert index not in names, "trigram indexes exist on PostgreSQL only"
