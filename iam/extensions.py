"""Extension objects, created unbound here and bound to an app in create_app()."""
import logging
import weakref

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session
from sqlalchemy import MetaData, event

from .jsonapi.connections import bound_to_read_connection, close_read_connection
from .jsonapi.errors import describe_database_error

log = logging.getLogger(__name__)

# Named constraints keep Alembic migrations deterministic on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class ReadBoundSession(Session):
    """Flask-SQLAlchemy's Session, bound to a read request's own connection when it has one
    (iam/jsonapi/connections.py)."""

    get_bind = bound_to_read_connection(Session.get_bind)


db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION),
                session_options={"class_": ReadBoundSession})



# Foreign keys a migration added to an existing SQLite table with ADD COLUMN ... REFERENCES
# (enforced, but unnamed to reflection: SQLite cannot add a named constraint without rebuilding
# the table, and rebuilding account_sessions would cascade-delete what references it). They
# are compared on PostgreSQL, where they are named constraints.
SQLITE_INLINE_FOREIGN_KEYS = {("account_sessions", ("oauth_client_id",)), ("account_sessions", ("parent_id",)),
                              ("accounts", ("manager_id",))}


def autogenerate_filter(dialect_name):
    """Alembic's include_object for a database of `dialect_name`: an index declared for another
    dialect only (`Index(...).ddl_if(dialect="postgresql")`) is not missing there."""
    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "foreign_key_constraint" and dialect_name == "sqlite" \
                and (obj.table.name, tuple(obj.column_keys)) in SQLITE_INLINE_FOREIGN_KEYS:
            return False
        ddl_if = getattr(obj, "_ddl_if", None)
        if type_ == "index" and not reflected and ddl_if is not None and ddl_if.dialect is not None:
            return ddl_if.dialect == dialect_name
        return True
    return include_object


def safe_session_teardown(app):
    """Replace Flask-SQLAlchemy's end-of-request `session.remove()` with one that never raises.

    After a failure, or when the database went away during the request, the rollback that ends
    the session can fail on a dead connection; raised from a teardown it would escape every error
    handler (the server's own HTML 500) after the answer was made. Logged as one line instead,
    and the connection is dropped (invalidated), never returned to the pool as it is."""
    funcs = app.teardown_appcontext_funcs
    funcs[:] = [_remove_session if func == db._teardown_session else func for func in funcs]


def _remove_session(exc=None):
    transaction = db.session.registry().get_transaction() if db.session.registry.has() else None
    connections = transaction.connections if transaction is not None else ()  # acquires none
    try:
        db.session.remove()
        close_read_connection()  # after the session that may have been bound to it
        return
    except Exception as error:  # noqa: BLE001 - nothing may escape a teardown
        log.warning("ending the database session failed, its connection is discarded: %s",
                    describe_database_error(error))
    close_read_connection(invalidate=True)
    for connection in connections:
        try:
            connection.invalidate()  # closed, never handed to another request
        except Exception:  # noqa: BLE001
            pass
    try:
        db.session.close()
    except Exception:  # noqa: BLE001
        pass
    finally:
        db.session.registry.clear()


class _MigrationDatabase:
    """`db` as Flask-Migrate (migrations/env.py) sees it: its engine shares the pool, but each
    transaction it begins turns off the statement timeout meant for requests (PostgreSQL), so a
    long migration is not cut short. The lock timeout stays: a migration that cannot get its
    lock in time fails (run it again) instead of stalling every request queued behind it."""

    _engines = weakref.WeakKeyDictionary()

    def __init__(self, database):
        self._database = database

    def __getattr__(self, name):
        return getattr(self._database, name)

    @property
    def engine(self):
        engine = self._database.engine
        migration = self._engines.get(engine)
        if migration is None:
            migration = engine.execution_options()  # an OptionEngine: same pool, listeners of its own
            event.listen(migration, "begin", _without_statement_timeout)
            self._engines[engine] = migration
        return migration


def _without_statement_timeout(conn):
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


class _Migrate(Migrate):
    def init_app(self, app, db=None, *args, **kwargs):
        db = db or self.db
        if not isinstance(db, _MigrationDatabase):
            db = _MigrationDatabase(db)
        super().init_app(app, db, *args, **kwargs)


migrate = _Migrate(render_as_batch=True, compare_type=True)
