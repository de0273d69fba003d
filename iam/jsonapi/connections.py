"""The connection a read request runs on: a pooled connection of its own, no ORM Session.

A GET on PostgreSQL needs no transaction (READ COMMITTED gives each statement its own
snapshot inside one too; the writes a read makes, the last-use bookkeeping, are single
statements), and most GETs need no ORM Session either: authentication, plain rows, counts
and include paths run on a Core connection (rows.py, driver.py). Opening a Session, its
transaction, a connection for it and closing them all again cost about an eighth of
`GET /accounts/me` in the app's process. So `Api.context` opens one connection for the
request, in autocommit (`open_read_connection`), reads run on it (`connection_for`), and a
Session that the request does use (a read through the ORM) is bound to that same connection
(`bound_to_read_connection`): one connection per request, as before. The connection goes
back to the pool when the request ends (`close_read_connection`, from the app's teardown),
and is dropped if a request runs again after a lost connection (iam/reconnect.py). The engine
registers that teardown itself, to run after every other (views.py), so an app that embeds the
engine cannot leave a pooled connection to the garbage collector.

SQLite keeps the Session's own transaction: its read transactions give one snapshot to a
whole request, and cost no round trip.
"""
from flask import g, has_app_context
from sqlalchemy import event

_KEY = "jsonapi_read_connection"
_GUARDED = "jsonapi_autocommit_guard"


def open_read_connection(engine):
    """Give this request a connection of its own in autocommit, unless it has one.

    Autocommit is the driver connection's own switch (psycopg's `autocommit`), turned on here and
    off again when the connection goes back to the pool (`_restore`, a checkin listener on the
    engine's pool). SQLAlchemy's `isolation_level="AUTOCOMMIT"` option does the same through
    its connection characteristics, which cost a third of the checkout and checkin (87K of 250K
    instructions, bench/README.md); the driver behaves the same either way (a COMMIT or ROLLBACK
    in autocommit sends no statement)."""
    if g.get(_KEY) is None:
        if not getattr(engine, _GUARDED, False):
            # Once per engine: a pool the engine makes anew (dispose(), a fork) copies its
            # predecessor's listeners, so a flag on the pool would add the listener again.
            event.listen(engine, "checkin", _restore)
            setattr(engine, _GUARDED, True)
        connection = engine.connect()
        try:
            connection.connection.driver_connection.autocommit = True
        except BaseException:
            connection.close()
            raise
        setattr(g, _KEY, connection)


def _restore(dbapi_connection, record):
    """Every connection goes back to the pool out of autocommit, however it got there (closed by
    close_read_connection, by an error path, by the garbage collector): the next checkout may
    be a write's transaction. An invalidated connection arrives as None (it is discarded)."""
    if dbapi_connection is not None and getattr(dbapi_connection, "autocommit", False):
        try:
            dbapi_connection.autocommit = False
        except Exception:  # noqa: BLE001 - a connection in no state to switch serves no one again
            record.invalidate()


def read_connection():
    """This request's read connection, or None."""
    return g.get(_KEY) if has_app_context() else None


def connection_for(session):
    """The connection a read runs on: the request's read connection, else the session's."""
    connection = read_connection()
    return connection if connection is not None else session.connection()


def close_read_connection(invalidate=False):
    """Return the request's read connection to the pool (discard it with `invalidate`: a
    connection that failed under a request never serves another). Never raises."""
    # `g` is the app context's: the app context's teardown (after the request context's) finds it.
    connection = g.pop(_KEY, None) if has_app_context() else None
    if connection is None:
        return
    if invalidate and not connection.invalidated:
        try:
            connection.invalidate()
        except Exception:  # noqa: BLE001 - closing below returns its slot to the pool all the same
            pass
    try:
        connection.close()  # back to the pool now: the request may run again and take one
    except Exception:  # noqa: BLE001 - the connection is gone either way
        pass


def bound_to_read_connection(get_bind):
    """Wrap a Session class's `get_bind`: the request's read connection when it has one."""
    def bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None:
            connection = read_connection()
            if connection is not None:
                return connection
        return get_bind(self, mapper=mapper, clause=clause, bind=bind, **kwargs)
    return bind
