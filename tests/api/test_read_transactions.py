"""On PostgreSQL, GET requests run their statements without BEGIN/ROLLBACK; writes keep transactions.

Under READ COMMITTED each statement sees its own snapshot inside a transaction too, so a
read's transaction only costs two round trips. SQLite keeps its read transactions (one
snapshot for the whole request, at no round-trip cost).
"""
import pytest

from iam import create_app
from iam.api import api
from iam.extensions import db
from tests.helpers import ApiClient, assert_jsonapi


def isolation_in_context(app, method):
    """How the request's statements run, for a request of `method`: AUTOCOMMIT (each one on
    its own), else the isolation level of the transaction they run in."""
    with app.test_request_context("/api/v3/iam/accounts", method=method):
        api.context(authenticate=False)
        try:
            connection = db.session.connection()
            if getattr(connection.connection.driver_connection, "autocommit", False) is True:
                return "AUTOCOMMIT"
            return connection.get_isolation_level()
        finally:
            db.session.remove()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_runs_in_autocommit_on_postgresql_and_in_a_transaction_on_sqlite(app, dialect, method):
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))  # the engine learns the database's default level
        db.session.remove()
    expected = "AUTOCOMMIT" if dialect == "postgresql" else "SERIALIZABLE"
    assert isolation_in_context(app, method) == expected


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_a_write_runs_in_a_transaction_and_the_pool_gives_back_no_autocommit_connection(app, dialect, method):
    """A write after a read gets a transactional connection: the pool undid the read's setting."""
    isolation_in_context(app, "GET")
    expected = "READ COMMITTED" if dialect == "postgresql" else "SERIALIZABLE"
    assert isolation_in_context(app, method) == expected


def test_a_read_still_records_the_sessions_use(app, factory, admin_account):
    """The one write a read makes (last_used_at, at most once a minute) is committed."""
    from datetime import timedelta

    from iam.models import AccountSession, utcnow

    stale = utcnow() - timedelta(minutes=5)
    token = factory.token(admin_account, last_used_at=stale)
    client = ApiClient(app.test_client(), token)
    body = assert_jsonapi(client.get("/accounts/me"), 200)
    assert body["data"]["id"] == str(admin_account.id)
    with app.app_context():
        sessions = db.session.query(AccountSession).filter_by(account_id=admin_account.id).all()
        assert len(sessions) == 1 and sessions[0].last_used_at > stale


def test_the_first_read_of_a_new_process_works(database_url, factory, admin_account, tmp_path):
    """A fresh app (its engine not yet connected, the database's default isolation level not
    yet known) answers its very first request, a read: here it once answered a 500."""
    fresh = create_app({"TESTING": True, "IAM_ENV": "test", "IAM_DATABASE_URL": database_url,
                        "PROPAGATE_UNEXPECTED_ERRORS": False})
    fresh.instance_path = str(tmp_path)
    try:
        client = ApiClient(fresh.test_client(), factory.token(admin_account))
        assert assert_jsonapi(client.get("/accounts/me"), 200)["data"]["id"] == str(admin_account.id)
        assert assert_jsonapi(client.get("/accounts"), 200)["data"]
    finally:
        with fresh.app_context():
            db.engine.dispose()


READS = [
    "/accounts/me",                                             # authentication's row only
    "/accounts?page[size]=5",                                   # plain rows
    "/accounts?included=roles,person,organization&count=true",  # rows, include paths, a count
    "/accounts/{account}?included=roles",                       # one row and its include
    "/organizations/{organization}/relationships/accounts",     # a relationship, through the ORM
]


@pytest.mark.parametrize("path", READS)
def test_a_read_takes_one_pooled_connection_and_gives_it_back(app, factory, path):
    """Each read uses one connection from the pool, whatever it reads through (Core rows, the
    driver, the ORM: on PostgreSQL the Session is bound to the request's read connection), and
    the pool has every connection back once the answer is made: also a caller whose visibility
    is a predicate (an org admin), and again on the next request."""
    from sqlalchemy import event

    organization = factory.organization()
    account = factory.account(organization_id=organization.id)
    path = path.format(account=account.id, organization=organization.id)
    org_admin = factory.account(organization_id=organization.id,
                                roles=[{"name": "org_admin", "scopes": {"organization": [organization.id]}}])
    with app.app_context():
        pool = db.engine.pool
    checkouts = []
    listener = lambda *_: checkouts.append(1)  # noqa: E731
    event.listen(pool, "checkout", listener)
    try:
        for caller in (factory.account(roles=["admin"]), org_admin):
            client = ApiClient(app.test_client(), factory.token(caller))
            for _ in range(2):
                checkouts.clear()
                assert_jsonapi(client.get(path), 200)
                assert len(checkouts) == 1, (path, len(checkouts))
                assert pool.checkedout() == 0
    finally:
        event.remove(pool, "checkout", listener)


@pytest.mark.databases("postgresql")  # reads take a connection of their own on PostgreSQL only
def test_a_read_connection_closed_any_way_goes_back_to_the_pool_out_of_autocommit(app):
    """The pool turns autocommit off on every checkin, not only when close_read_connection gives
    the connection back: here the request's connection is closed directly, as an error path or
    the garbage collector would, and the next write still runs in a transaction."""
    from iam.jsonapi.connections import read_connection

    isolation_in_context(app, "GET")  # the engine learns the default level, the listener is in place
    with app.test_request_context("/api/v3/iam/accounts", method="GET"):
        api.context(authenticate=False)
        connection = read_connection()
        assert connection.connection.driver_connection.autocommit is True
        connection.close()
    with app.app_context():
        pool = db.engine.pool
        assert pool.checkedout() == 0
    assert isolation_in_context(app, "POST") == "READ COMMITTED"


@pytest.mark.databases("postgresql")
def test_the_pool_made_anew_keeps_one_autocommit_guard(app):
    """After engine.dispose() (as before gunicorn forks its workers) the new pool has the guard
    once, not once more per dispose, and reads still give their connections back transactional."""
    from iam.jsonapi.connections import _restore

    for _ in range(3):
        isolation_in_context(app, "GET")
        with app.app_context():
            db.engine.dispose()
    isolation_in_context(app, "GET")
    with app.app_context():
        assert list(db.engine.pool.dispatch.checkin).count(_restore) == 1
    assert isolation_in_context(app, "POST") == "READ COMMITTED"
