"""A connection lost before a request did anything costs the request nothing: it runs again.

The pool does not ping a connection when it hands it out (`pool_pre_ping` would cost a
round trip on every request, for nothing almost always). A connection can still be dead
when a request takes it: the database restarted, a proxy or PostgreSQL's idle timeout
closed it. The request's first statement then fails with a disconnect; SQLAlchemy drops
that connection and marks every other connection of the pool older than the failure as
stale (they are replaced when next taken), and this module runs the view once more, on a
fresh connection, instead of answering 503:

- a GET or HEAD request runs again whatever it had done: it changes nothing but the
  last-use bookkeeping of its session, which is idempotent;
- any other request runs again only when no statement of it had completed: the failing
  statement was its first, so nothing it meant to write reached the database.

Once only: a database still down answers 503 (`database_unavailable`, iam/jsonapi/errors.py).
A failure while committing is never replayed (`outcome_unknown`: the write may have landed).
"""
import logging

from flask import g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .extensions import db
from .jsonapi.connections import close_read_connection
from .jsonapi.errors import describe_database_error

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD"})


@event.listens_for(Engine, "after_cursor_execute")
def _statement_done(conn, cursor, statement, parameters, context, executemany):
    if has_request_context():
        g.iam_statement_done = True


def _replayable(error):
    if not isinstance(error, DBAPIError) or not error.connection_invalidated:
        return False
    if getattr(error, "iam_during_commit", False):
        return False
    return request.method in SAFE_METHODS or not g.get("iam_statement_done", False)


def _reset_request_state(before):
    """Undo what the failed attempt left: its session (on a dropped connection) and whatever it
    put in `g` (the principal, the request context, the policy's grants...): `g` is put back as
    it was when the view was first called."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is gone; closing below discards it
        pass
    db.session.close()
    close_read_connection(invalidate=True)
    g.__dict__.clear()
    g.__dict__.update(before)


def init_app(app):
    dispatch = app.dispatch_request

    def dispatch_request():
        before = dict(g.__dict__)  # what the before-request hooks set (the request id, the clock)
        try:
            return dispatch()
        except Exception as error:
            if not _replayable(error):
                raise
            log.warning("the database connection was lost before %s %s had done anything (%s): running it again "
                        "on a new connection", request.method, request.path, describe_database_error(error))
            _reset_request_state(before)
            return dispatch()

    app.dispatch_request = dispatch_request
