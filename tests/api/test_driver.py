"""Prebuilt statements (iam/jsonapi/driver.py) run on psycopg's own cursor on PostgreSQL and
through SQLAlchemy elsewhere. Both paths must give the same rows, call the same statement
listeners and fail the same way: SQLAlchemy's exception classes, and a lost connection
invalidated (what iam/reconnect.py replays on)."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Enum, Integer, String, bindparam, column, event, literal, select, table
from sqlalchemy.exc import DBAPIError, ProgrammingError

from iam.auth.principal import _PRINCIPAL
from iam.extensions import db
from iam.jsonapi.driver import ROW_READ, Prebuilt
from iam.models import Account, AccountRole, AccountSession, Group, group_members, utcnow
from tests.faults.helpers import pg_connect


@pytest.fixture
def grants(app, factory):
    """An account with a session, two direct roles (one scoped, one future) and a group's roles."""
    org = factory.organization()
    account = factory.account(email="driver@example.com", roles=["admin"], organization_id=org.id)
    now = utcnow()
    with app.app_context():
        db.session.add(AccountRole(account_id=account.id, name="auditor", scopes={"organizations": [1, 2]},
                                   not_before=now + timedelta(days=1),
                                   expires_at=datetime(2100, 1, 2, 3, 4, 5, 999999, tzinfo=timezone.utc)))
        group = Group(organization_id=org.id, name="ops", roles=[{"name": "viewer"}])
        db.session.add(group)
        db.session.flush()
        db.session.execute(group_members.insert().values(group_id=group.id, account_id=account.id))
        session = AccountSession(account_id=account.id, expires_at=now + timedelta(hours=1),
                                 last_used_at=now.replace(microsecond=1))
        db.session.add(session)
        db.session.commit()
        return {"account_id": account.id, "session_id": session.id}


def through_sqlalchemy(prebuilt, parameters):
    connection = db.session.connection()
    return [tuple(row) for row in connection.execute(prebuilt.statement(connection.dialect.name), parameters,
                                                     execution_options=ROW_READ)]


def test_the_rows_are_sqlalchemys_rows(app, grants):
    """Timestamps (aware, with and without a fraction), JSON, NULLs, literals: value for value."""
    with app.app_context():
        rows = _PRINCIPAL.rows(db.session.connection(), grants)
        expected = through_sqlalchemy(_PRINCIPAL, grants)
        assert len(rows) == 3  # two direct roles, one group
        assert [tuple(row) for row in rows] == expected
        values = [value for row in rows for value in row]
        assert any(isinstance(v, datetime) and v.tzinfo is not None and v.microsecond == 999999 for v in values)
        assert {"organizations": [1, 2]} in values and [{"name": "viewer"}] in values
        assert not any(isinstance(v, datetime) and v.tzinfo is None for v in values)


def test_an_array_parameter_and_the_statements_own_constants(app, factory, dialect):
    a, b = factory.account(email="a@example.com"), factory.account(email="b@example.com")
    accounts = Account.__table__

    def build(dialect_name):
        keys = (accounts.c.id == bindparam("keys").any_() if dialect_name == "postgresql"
                else accounts.c.id.in_(bindparam("keys", expanding=True)))
        return select(accounts.c.id, accounts.c.email, literal(7, Integer).label("seven"),
                      literal("x", String).label("x")).where(keys).order_by(accounts.c.id)

    prebuilt = Prebuilt(build)
    with app.app_context():
        rows = prebuilt.rows(db.session.connection(), {"keys": [b.id, a.id, 2 ** 31 - 1]})
        assert [tuple(row) for row in rows] == [(a.id, "a@example.com", 7, "x"), (b.id, "b@example.com", 7, "x")]
        assert prebuilt.rows(db.session.connection(), {"keys": []}) == []


def test_statement_listeners_see_it(app, grants, count_queries):
    with count_queries() as statements, app.app_context():
        _PRINCIPAL.rows(db.session.connection(), grants)
        done = []

        def listener(conn, cursor, statement, *args):
            done.append(statement)

        event.listen(db.engine, "after_cursor_execute", listener)
        try:
            _PRINCIPAL.rows(db.session.connection(), grants)
        finally:
            event.remove(db.engine, "after_cursor_execute", listener)
    assert len(statements) == 2 and "account_sessions" in statements[0]
    assert done == statements[1:]


def test_an_error_is_sqlalchemys_and_leaves_the_session_usable(app, dialect):
    missing = Prebuilt(lambda _: select(table("no_such_table", column("id"))).where(column("id") == bindparam("id")))
    with app.app_context():
        with pytest.raises(ProgrammingError if dialect == "postgresql" else DBAPIError) as caught:
            missing.rows(db.session.connection(), {"id": 1})
        assert "no_such_table" in str(caught.value) and not caught.value.connection_invalidated
        db.session.rollback()
        assert db.session.connection().execute(select(literal(1))).scalar() == 1


def test_a_lost_connection_is_invalidated(app, grants, postgresql_only, database_url):
    """Its backend ended under it: a DBAPIError with connection_invalidated (iam/reconnect.py
    runs the request again), and the next connection works."""
    with app.app_context():
        connection = db.session.connection()
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with pg_connect(database_url, autocommit=True) as side:
            side.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DBAPIError) as caught:
            _PRINCIPAL.rows(connection, grants)
        assert caught.value.connection_invalidated
        db.session.rollback()
        db.session.close()
        assert len(_PRINCIPAL.rows(db.session.connection(), grants)) == 3


def test_a_statement_sqlalchemy_would_process_is_refused(app, postgresql_only):
    """A Python enum column would come back as a string from the driver, not as the enum."""
    import enum

    class Colour(enum.Enum):
        red = "red"

    accounts = Account.__table__
    enum_column = Prebuilt(lambda _: select(accounts.c.email.cast(Enum(Colour, native_enum=False)).label("c")))
    with app.app_context(), pytest.raises(TypeError, match="needs SQLAlchemy's processing"):
        enum_column.rows(db.session.connection(), {})
