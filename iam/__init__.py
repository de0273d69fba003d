"""iam: an identity and access management server speaking JSON:API."""
import logging
import os
import weakref
from types import FunctionType

from flask import Flask, has_request_context, request
from flask.sessions import SessionInterface
from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import config as config_module
from .extensions import db, migrate, safe_session_teardown
from .jsonapi.encoding import OrjsonProvider


class IamFlask(Flask):
    """Flask, deciding once per function whether a hook or view is a coroutine function.

    Flask asks `inspect.iscoroutinefunction` of every before/after/teardown hook and of the
    view on every request (about ten times a GET), for functions that never change. Plain
    functions found synchronous are remembered (weakly: a function made per request, as
    `after_this_request` takes, is not kept alive); anything else is asked every time."""

    _synchronous = weakref.WeakSet()

    def ensure_sync(self, func):
        if type(func) is FunctionType and func in self._synchronous:
            return func
        made = super().ensure_sync(func)
        if made is func and type(func) is FunctionType:
            self._synchronous.add(func)
        return made


def create_app(overrides=None):
    """The application factory; `overrides` are config values that win over the environment."""
    app = IamFlask(__name__, instance_path=os.environ.get("IAM_INSTANCE_PATH") or None,
                instance_relative_config=True)
    app.json = OrjsonProvider(app)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(config_module.load(app.instance_path, overrides=overrides))
    app.url_map.strict_slashes = False
    # The API keeps no state in cookies: no signed-cookie session is opened on every request.
    # (A part that needs one, such as browser pages, brings its own session interface.)
    app.session_interface = NoCookieSession()

    logging.basicConfig(level=os.environ.get("IAM_LOG_LEVEL", "INFO").upper())  # gunicorn takes either case

    db.init_app(app)
    safe_session_teardown(app)  # ending a request's session never raises (a dead connection's rollback)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"))

    from . import cli, cors, health, observability, reconnect, security_headers, throttle
    from .api import blueprint
    from . import scim, web
    from .oauth import server as oauth_server
    from .jsonapi.errors import register_error_handlers
    from .jsonapi.media import bodyless_answers

    app.register_blueprint(blueprint)
    app.register_blueprint(health.blueprint)
    web.init_app(app)  # the sign-in pages, and the signed cookie session of the page paths only
    oauth_server.init_app(app)  # the OpenID Provider's endpoints, at the server's root
    scim.init_app(app)  # SCIM 2.0 at /scim/v2, for identity providers' keys only
    register_error_handlers(app)
    reconnect.init_app(app)  # a connection found dead by a request's first statement: the request runs again
    throttle.init_app(app)
    observability.init_app(app)
    security_headers.init_app(app)  # Cache-Control, nosniff, framing, CSP on every answer
    app.after_request(bodyless_answers)  # a 204/304 has no Content-Type; OPTIONS answers 204
    cors.init_app(app)  # IAM_CORS_ORIGINS: CORS headers on /api/v3/iam for those origins only
    cli.register(app)

    if not app.config.get("TESTING"):
        from .bootstrap import bootstrap_admin
        bootstrap_admin(app)
    return app


class NoCookieSession(SessionInterface):
    """`flask.session` is a NullSession (reading works, writing raises); no cookie is read or set."""

    def open_session(self, app, request):
        return None  # Flask then makes its null session

    def save_session(self, app, session, response):
        return None


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: enforce foreign keys, let readers and a writer share the file, wait on locks."""
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # busy_timeout (how long to wait on a lock) is IAM_DB_LOCK_TIMEOUT: sqlite3.connect(timeout=...)
    # sets it as the file is opened, before any PRAGMA here (config.engine_options).
    cursor.close()
    # We begin transactions ourselves (below) instead of the driver's lazy BEGIN.
    dbapi_connection.isolation_level = None


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """SQLite ignores SELECT ... FOR UPDATE: a write request takes the write lock when its
    transaction begins (BEGIN IMMEDIATE), so two writers never read the same version of a row
    and one of them fail with a 412 it did not ask for. Reads begin deferred and stay concurrent.

    Work outside a request (background jobs, the CLI, start-up) begins IMMEDIATE too: a deferred
    transaction that read cannot write once another connection committed after its read
    ("database is locked" at once, whatever the busy timeout), and such work reads then writes."""
    if conn.dialect.name != "sqlite":
        return
    writing = not has_request_context() or request.method in ("POST", "PUT", "PATCH", "DELETE")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")
