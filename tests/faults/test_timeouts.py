"""Waiting on the database is bounded (issue 10, finding 9): a held lock or a slow statement
answers 503 with Retry-After after IAM_DB_LOCK_TIMEOUT / IAM_DB_STATEMENT_TIMEOUT, and the
same write works once the lock is released."""
import sqlite3
import threading
import time

from sqlalchemy import text
from sqlalchemy.engine import make_url

from iam.extensions import db
from tests.faults.helpers import assert_unavailable, organization, pg_connect, tracebacks
from tests.helpers import ApiClient, assert_jsonapi

LOCK = 0.5  # seconds: what the tests' apps wait before they give up
SLACK = 2.5  # what a loaded 2-core machine may add to it


def _admin(app, factory):
    return ApiClient(app.test_client(), factory.token(factory.account(roles=["admin"])))


def _timed(call, release):
    """(response, seconds) of call() made while a lock is held; `release()` frees the lock after
    LOCK + SLACK at the latest, so a request that would wait forever fails the test, not hangs it."""
    result = {}

    def run():
        started = time.monotonic()
        result["response"] = call()
        result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=LOCK + SLACK)
    waited = thread.is_alive()
    release()
    thread.join(timeout=30)
    assert not waited, f"the request still waited on the lock after {LOCK + SLACK} s"
    return result["response"], result["elapsed"]


def test_a_held_postgresql_lock_answers_503_after_the_lock_timeout(postgresql_only, make_app, factory,
                                                                    database_url, caplog):
    app = make_app(IAM_DB_LOCK_TIMEOUT=LOCK, IAM_DB_STATEMENT_TIMEOUT=10)
    admin = _admin(app, factory)
    with pg_connect(database_url) as holder:
        holder.execute("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
        response, elapsed = _timed(lambda: admin.post("/organizations", organization("locked-out")), lambda: None)
        body = assert_unavailable(response)
        assert "did not answer in time" in body["errors"][0]["detail"]
        assert LOCK <= elapsed < LOCK + SLACK, elapsed
        # A read waits on the same lock (outside any transaction) and gives up the same way.
        response, elapsed = _timed(lambda: admin.get("/organizations"), holder.rollback)
        assert_unavailable(response)
        assert elapsed < LOCK + SLACK, elapsed
    assert_jsonapi(admin.post("/organizations", organization("locked-out")), 201)
    assert not tracebacks(caplog)
    assert "answered 503 database_unavailable for POST" in caplog.text and "55P03" in caplog.text


def test_a_postgresql_statement_timeout_answers_503(postgresql_only, make_app, factory, database_url, caplog):
    app = make_app(IAM_DB_LOCK_TIMEOUT=30, IAM_DB_STATEMENT_TIMEOUT=LOCK)
    admin = _admin(app, factory)
    with pg_connect(database_url) as holder:
        holder.execute("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
        response, elapsed = _timed(lambda: admin.post("/organizations", organization("slow")), holder.rollback)
        assert_unavailable(response)
        assert elapsed < LOCK + SLACK, elapsed
    assert_jsonapi(admin.post("/organizations", organization("slow")), 201)
    assert not tracebacks(caplog)
    assert "57014" in caplog.text  # query_canceled: the statement timeout
    with app.app_context():  # every connection of the app carries both settings
        assert db.session.execute(text("SHOW statement_timeout")).scalar() == "500ms"
        assert db.session.execute(text("SHOW lock_timeout")).scalar() == "30s"


def test_a_held_sqlite_write_lock_answers_503_after_the_lock_timeout(sqlite_only, make_app, factory, database_url,
                                                                     caplog):
    app = make_app(IAM_DB_LOCK_TIMEOUT=LOCK)
    admin = _admin(app, factory)
    holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        response, elapsed = _timed(lambda: admin.post("/organizations", organization("locked-out")),
                                   lambda: holder.execute("ROLLBACK"))
        assert_unavailable(response)
        assert LOCK <= elapsed < LOCK + SLACK, elapsed
    finally:
        holder.close()
    assert_jsonapi(admin.post("/organizations", organization("locked-out")), 201)
    assert not tracebacks(caplog)
    assert "database is locked" in caplog.text


def test_migrations_run_without_the_statement_timeout(postgresql_only, make_app):
    """`flask db upgrade` goes through Flask-Migrate's engine: its transactions turn the request
    timeout off (a long migration must not be cut short); the lock timeout stays."""
    app = make_app(IAM_DB_STATEMENT_TIMEOUT=LOCK, IAM_DB_LOCK_TIMEOUT=3)
    with app.app_context():
        migration_engine = app.extensions["migrate"].db.engine
        with migration_engine.begin() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "3s"
        with db.engine.begin() as conn:  # the same pooled connections, back to the request settings
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "500ms"


def test_every_pooled_connection_busy_answers_503_after_the_pool_timeout(make_app, factory, caplog):
    app = make_app(IAM_DB_POOL_TIMEOUT=LOCK)  # waits 1 s: the pool takes whole seconds
    admin = _admin(app, factory)
    with app.app_context():
        engine = db.engine
    held = []
    try:
        while len(held) < engine.pool.size() + engine.pool._max_overflow:  # the whole pool, overflow too
            held.append(engine.connect())
        response, elapsed = _timed(lambda: admin.get("/organizations"), lambda: None)
        assert_unavailable(response)
        assert 1 <= elapsed < 1 + SLACK, elapsed
    finally:
        for conn in held:
            conn.close()
    assert_jsonapi(admin.get("/organizations"), 200)
    assert not tracebacks(caplog)
    assert "QueuePool limit" in caplog.text
