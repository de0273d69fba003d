"""Error objects, and the handlers that make every failure one.

Everything the engine or a resource rejects raises `JsonApiError` (or a list of them in
`JsonApiErrors`); the handlers below turn those, werkzeug's HTTP errors and anything
unexpected into a JSON:API error document. Unexpected errors are logged with their trace
and answered with a bare 500, never the trace itself.

A database that cannot serve (unreachable, restarting, out of connections, a statement or
lock timeout, SQLite's "database is locked") is not a bug: it answers 503 with Retry-After
and is logged as one line. A failure of the COMMIT itself leaves the outcome unknown: 503
`outcome_unknown`, and the client should read before it retries. Database error messages
are stripped of the values PostgreSQL quotes in them (DETAIL lines repeat whole rows), and
the engine hides bound parameters (config.engine_options), so no log carries them.
"""
import logging
import re
import weakref

from flask import current_app, has_request_context, jsonify, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from werkzeug.exceptions import HTTPException

from .media import JSONAPI_MEDIA_TYPE

log = logging.getLogger(__name__)


class JsonApiError(Exception):
    """One error object; raising it answers with its status."""

    def __init__(self, status, code, title, detail=None, *, pointer=None, parameter=None,
                 header=None, headers=None, meta=None):
        super().__init__(detail or title)
        self.status = int(status)
        self.code = code
        self.title = title
        self.detail = detail
        self.source = {}
        if pointer is not None:
            self.source["pointer"] = pointer
        if parameter is not None:
            self.source["parameter"] = parameter
        if header is not None:
            self.source["header"] = header
        self.headers = headers or {}
        self.meta = meta

    def to_dict(self):
        error = {"status": str(self.status), "code": self.code, "title": self.title}
        if self.detail:
            error["detail"] = self.detail
        if self.source:
            error["source"] = dict(self.source)
        if self.meta:
            error["meta"] = self.meta
        return error


class JsonApiErrors(Exception):
    """Several error objects at once (one per invalid field); the status is the first one's."""

    def __init__(self, errors):
        super().__init__("; ".join(e.detail or e.title for e in errors))
        self.errors = list(errors)
        self.status = self.errors[0].status
        self.headers = {}
        for e in self.errors:
            self.headers.update(e.headers)


def json_pointer(*tokens):
    """An RFC 6901 pointer to these member names/indices: `~` and `/` in a token are escaped.

    Member names often come from the client (an unknown attribute `a/b` is `/data/attributes/a~1b`)."""
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


# Constructors for the errors the engine raises most; the codes are part of the contract.

def bad_parameter(parameter, detail, code="invalid_parameter"):
    return JsonApiError(400, code, "Invalid query parameter", detail, parameter=parameter)


def bad_request(detail, pointer=None, code="bad_request"):
    return JsonApiError(400, code, "Bad request", detail, pointer=pointer)


def invalid_field(pointer, detail, code="invalid_value"):
    return JsonApiError(422, code, "Invalid attribute", detail, pointer=pointer)


def conflict(detail, code="conflict", pointer=None):
    return JsonApiError(409, code, "Conflict", detail, pointer=pointer)


def forbidden(detail="You are not allowed to do this.", pointer=None):
    return JsonApiError(403, "forbidden", "Forbidden", detail, pointer=pointer)


def unauthenticated(detail="Authentication is required."):
    return JsonApiError(401, "unauthenticated", "Unauthenticated", detail,
                        headers={"WWW-Authenticate": 'Bearer realm="iam"'})


# Codes for werkzeug's own errors (routing, size limits, methods).
_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    412: "precondition_failed", 413: "request_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 429: "rate_limited", 431: "headers_too_large",
}


def error_response(errors, status, headers=None):
    response = jsonify({"errors": [e.to_dict() for e in errors], "jsonapi": {"version": "1.1"}})
    response.status_code = status
    response.mimetype = JSONAPI_MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_jsonapi_error(error):
    return error_response([error], error.status, error.headers)


def _handle_jsonapi_errors(error):
    return error_response(error.errors, error.status, error.headers)


def _handle_http_exception(error):
    status = error.code or 500
    if status < 400:  # redirects raised as exceptions (e.g. strict slashes) keep their response
        return error
    title = error.name
    detail = error.description
    if status == 404:
        detail = "No such endpoint or resource."
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
        detail = "Allowed methods: " + ", ".join(error.valid_methods) + "."
    for name, value in (error.get_headers() if hasattr(error, "get_headers") else []):
        if name.lower() not in ("content-type",):
            headers[name] = value
    err = JsonApiError(status, _HTTP_CODES.get(status, "error"), title, detail)
    return error_response([err], status, headers)


def _handle_integrity_error(error):
    """Safety net: a constraint the database enforced that no check caught first is a 409."""
    log.info("constraint violation reached the error handler: %s", error.orig)
    err = JsonApiError(409, "conflict", "Conflict",
                       "The change conflicts with stored data (a unique value or a reference).")
    return error_response([err], 409)


def _handle_deleted(error):
    """Safety net: the row was deleted by someone else between two reads of this request."""
    err = JsonApiError(404, "not_found", "Not found", "The resource was deleted meanwhile.")
    return error_response([err], 404)


def _handle_stale_data(error):
    err = JsonApiError(412, "precondition_failed", "Precondition failed",
                       "The resource was changed by someone else meanwhile; fetch it and retry.")
    return error_response([err], 412)


# ------------------------------------------------------------ the database as a failing dependency

RETRY_AFTER = "1"  # seconds: a restart, a failover or a lock queue is over in a few

# PostgreSQL SQLSTATEs (classes by their first two characters) that mean "the database cannot
# serve this now, try again", not "this request is wrong": connection exceptions (08),
# insufficient resources (53: too many connections, disk full, out of memory), operator
# intervention (57: shutdown, crash recovery, cannot connect now, a cancelled statement),
# system errors (58: I/O), a read-only transaction (25006: a standby, mid-failover), the
# statement, lock and idle-transaction timeouts, and the two transaction rollbacks a retry
# resolves (40001 serialization failure, 40P01 deadlock).
_PG_UNAVAILABLE_CLASSES = {"08", "53", "57", "58"}
_PG_UNAVAILABLE_STATES = {"25006"}
_PG_TIMEOUT_STATES = {"57014", "55P03", "25P03"}
_PG_RETRY_STATES = {"40001", "40P01"}
# SQLite result codes (sqlite3's sqlite_errorname, extended codes folded): a lock held past the
# busy timeout, and a file that cannot be opened, read, written or grown. Everything else
# (no such table, a constraint, a syntax error) is a genuine error.
_SQLITE_TIMEOUT = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_SQLITE_UNAVAILABLE = {"SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_PROTOCOL"}

_DETAILS = {
    "unavailable": "The database is unavailable; the request was not carried out. Retry shortly.",
    "timeout": "The database did not answer in time (a statement or lock timeout); the request was not "
               "carried out. Retry shortly.",
    "retry": "The database could not serialize this request with a concurrent one; the request was not "
             "carried out. Retry it.",
    "outcome_unknown": "The database failed while committing this change: it may or may not have been "
                       "stored. Read the resource (or list with a filter) before retrying.",
}


def _database_failure(exc):
    """'unavailable', 'timeout' or 'retry' when `exc` says the database cannot serve now; else None."""
    if isinstance(exc, PoolTimeoutError):
        return "unavailable"  # every pooled connection busy for IAM_DB_POOL_TIMEOUT
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return "unavailable"  # SQLAlchemy saw the connection die (and dropped it)
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        if sqlstate in _PG_TIMEOUT_STATES:
            return "timeout"
        if sqlstate in _PG_RETRY_STATES:
            return "retry"
        if sqlstate[:2] in _PG_UNAVAILABLE_CLASSES or sqlstate in _PG_UNAVAILABLE_STATES:
            return "unavailable"
        return None
    errorname = getattr(orig, "sqlite_errorname", None)
    if errorname is None and type(orig).__module__ == "sqlite3" and "database is locked" in str(orig):
        errorname = "SQLITE_BUSY"
    if errorname:
        base = "_".join(errorname.split("_")[:2])
        if base in _SQLITE_TIMEOUT:
            return "timeout"
        if base in _SQLITE_UNAVAILABLE:
            return "unavailable"
        return None
    if isinstance(exc, OperationalError) and type(orig).__module__.startswith("psycopg"):
        return "unavailable"  # no SQLSTATE: no server answered (refused, reset, closed, connect timeout)
    return None


def _commit_outcome_unknown(exc):
    """A failure of the COMMIT itself that does not prove the transaction was rolled back."""
    if not getattr(exc, "iam_during_commit", False):
        return False
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate and sqlstate[:2] not in ("08", "57"):
        return False  # the server answered the COMMIT with an error: it rolled back
    if getattr(orig, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
        return False  # SQLite: a busy COMMIT did not happen
    return True


def database_unavailable(exc):
    """The 503 error object for an exception meaning the database cannot serve now, or None."""
    failure = _database_failure(exc)
    if failure is None:
        return None
    code = "database_unavailable"
    if _commit_outcome_unknown(exc):
        failure = code = "outcome_unknown"
    return JsonApiError(503, code, "Service unavailable", _DETAILS[failure], headers={"Retry-After": RETRY_AFTER})


def describe_database_error(exc):
    """One log line's worth: the driver's exception, its SQLSTATE or SQLite code, its first line."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__module__}.{type(orig).__name__}" + (f" [{code}]" if code else "") \
        + (f": {lines[0].strip()}" if lines else "")


def _handle_database_error(error):
    unavailable = database_unavailable(error)
    if unavailable is None:
        return _handle_unexpected(error)
    where = f" for {request.method} {request.path}" if has_request_context() else ""
    log.warning("database unavailable, answered 503 %s%s: %s", unavailable.code, where,
                describe_database_error(error))
    return error_response([unavailable], 503, unavailable.headers)


# A data exception's primary message quotes the offending value: `invalid input syntax for type
# integer: "..."`; identifiers in other classes' messages are the schema's, not the client's.
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
# Connections whose COMMIT is under way (ConnectionEvents.commit fires just before it is sent).
_committing = weakref.WeakSet()


def _scrub(orig, wrapped):
    """Keep only PostgreSQL's primary message: DETAIL (`Failing row contains (...)`,
    `Key (email)=(...)`) and CONTEXT carry the values a statement was given."""
    diag = getattr(orig, "diag", None)
    sqlstate = getattr(orig, "sqlstate", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if not primary or not sqlstate:
        return  # a client-side error (no server message): it holds no values
    if sqlstate.startswith("22"):
        primary = _QUOTED.sub('"..."', primary)
    if orig.args == (primary,):
        return
    orig.args = (primary,)
    if wrapped is not None:  # SQLAlchemy's message was formatted from the original's
        wrapped.args = (f"({type(orig).__module__}.{type(orig).__name__}) {primary}",)


@event.listens_for(Engine, "handle_error")
def _on_database_error(context):
    _scrub(context.original_exception, context.sqlalchemy_exception)
    conn = context.connection
    if conn is not None and context.statement is None and conn in _committing:
        _committing.discard(conn)
        if context.sqlalchemy_exception is not None:
            context.sqlalchemy_exception.iam_during_commit = True


@event.listens_for(Engine, "commit")
def _on_commit(conn):
    _committing.add(conn)


@event.listens_for(Engine, "begin")
@event.listens_for(Engine, "rollback")
def _on_transaction_end(conn):
    _committing.discard(conn)


def _handle_unexpected(error):
    if isinstance(error, HTTPException):
        return _handle_http_exception(error)
    log.exception("unhandled error")
    if current_app.config.get("PROPAGATE_UNEXPECTED_ERRORS"):
        raise error
    err = JsonApiError(500, "internal_error", "Internal server error",
                       "The server failed to handle this request; it has been logged.")
    return error_response([err], 500)


_HANDLERS = ((JsonApiError, _handle_jsonapi_error), (JsonApiErrors, _handle_jsonapi_errors),
             (HTTPException, _handle_http_exception), (IntegrityError, _handle_integrity_error),
             (StaleDataError, _handle_stale_data), (ObjectDeletedError, _handle_deleted),
             (DBAPIError, _handle_database_error), (PoolTimeoutError, _handle_database_error),
             (Exception, _handle_unexpected))


def register_error_handlers(app):
    """Every error, from any blueprint or from routing itself, becomes a JSON:API document."""
    for error_class, handler in _HANDLERS:
        app.register_error_handler(error_class, handler)


def answer_for(error):
    """The JSON:API answer these handlers give `error` (logged as they log it): for a part of
    the app that answers in another format (OAuth errors, pages) with the same status and
    headers (a 503's Retry-After)."""
    for error_class, handler in _HANDLERS:
        if isinstance(error, error_class):
            return handler(error)
    return _handle_unexpected(error)
