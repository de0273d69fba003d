"""The rollback that ends a request's session fails (issue 10, finding 8): the answer the view
made is the one served, as JSON:API over a real server (never the server's own HTML 500), the
failure is one log line, and the connection is dropped, not handed to the next request."""
import sqlite3

import requests
from sqlalchemy import event

from iam.extensions import db
from tests.faults.helpers import ORGANIZATIONS, headers, organization, serving, tracebacks
from tests.helpers import JSONAPI

INVALID = {"data": {"type": "organizations", "attributes": {}}}  # a 422, answered with a transaction open


def _check(url, token, caplog):
    response = requests.post(url + ORGANIZATIONS, json=INVALID, headers=headers(token), timeout=10)
    assert response.status_code == 422, response.text[:500]
    assert response.headers["Content-Type"].startswith(JSONAPI), response.headers
    assert response.json()["errors"][0]["status"] == "422"
    return response


def _closed(dbapi_connection):
    if hasattr(dbapi_connection, "closed"):  # psycopg
        return bool(dbapi_connection.closed)
    try:
        dbapi_connection.execute("SELECT 1")
    except sqlite3.ProgrammingError as exc:
        return "closed" in str(exc)
    return False


def test_a_dead_connection_at_teardown_keeps_the_answer(pg_proxy, make_app, factory, caplog):
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2)
    token = factory.token(factory.account(roles=["admin"]))
    # Runs before the session's teardown (teardowns run in reverse order): the database goes away
    # between the answer and the rollback that ends the request's transaction.
    proxied.teardown_appcontext_funcs.append(lambda exc: pg_proxy.cut())
    with serving(proxied) as url:
        _check(url, token, caplog)
        pg_proxy.restore()
        proxied.teardown_appcontext_funcs.pop()
        again = requests.post(url + ORGANIZATIONS, json=organization("after-teardown"), headers=headers(token),
                              timeout=10)
        assert again.status_code == 201, again.text[:500]
    assert not tracebacks(caplog)
    assert "ending the database session failed" in caplog.text


def test_a_failing_teardown_rollback_keeps_the_answer_and_drops_the_connection(make_app, factory, caplog):
    app = make_app()
    token = factory.token(factory.account(roles=["admin"]))
    with app.app_context():
        engine = db.engine
    failed = []

    def rollback_fails(conn):
        if not failed:
            failed.append(conn.connection.dbapi_connection)
            raise sqlite3.OperationalError("disk I/O error")  # what a dying disk or server answers

    event.listen(engine, "rollback", rollback_fails)
    try:
        with serving(app) as url:
            _check(url, token, caplog)
            # The next write gets a working connection (and on SQLite no write lock is left behind).
            again = requests.post(url + ORGANIZATIONS, json=organization("after-teardown"), headers=headers(token),
                                  timeout=10)
            assert again.status_code == 201, again.text[:500]
    finally:
        event.remove(engine, "rollback", rollback_fails)
    assert failed and _closed(failed[0]), "the connection whose rollback failed was closed"
    assert not tracebacks(caplog)
    assert "ending the database session failed" in caplog.text and "disk I/O error" in caplog.text
