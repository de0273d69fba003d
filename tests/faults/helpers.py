"""Helpers of the fault tests: a live server, side connections, log checks."""
import contextlib
import threading
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from tests.helpers import API, JSONAPI
from tests.jsonapi_document import ValidatingMiddleware


@contextlib.contextmanager
def serving(app):
    """The app on a real threaded werkzeug server on 127.0.0.1; every answer checked as JSON:API."""
    checked = ValidatingMiddleware(app)
    server = make_server("127.0.0.1", 0, checked, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
    if checked.violations:
        pytest.fail(f"{len(checked.violations)} answer(s) broke JSON:API 1.1:\n\n" + "\n\n".join(checked.violations[:3]),
                    pytrace=False)


def tracebacks(caplog):
    """The log records that carry a traceback."""
    return [record for record in caplog.records if record.exc_info or "Traceback" in record.getMessage()]


def pg_connect(database_url, **kwargs):
    """A psycopg connection of the test's own, straight to the server (not through a proxy)."""
    url = make_url(database_url)
    return psycopg.connect(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
                           password=url.password, dbname=url.database, **kwargs)


def named_app(make_app, database_url):
    """(app, its application_name): an app whose PostgreSQL connections a test can find and end."""
    name = f"iam-faults-{time.monotonic_ns()}"
    separator = "&" if "?" in database_url else "?"
    return make_app(f"{database_url}{separator}application_name={name}"), name


def backends(database_url, application_name):
    """The pids of the backends of the app called `application_name`, in the test database."""
    with pg_connect(database_url, autocommit=True) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (application_name,))]


def terminate(database_url, pids):
    with pg_connect(database_url, autocommit=True) as conn:
        for pid in pids:  # only backends of this test's own app, in this database
            conn.execute("SELECT pg_terminate_backend(%s) FROM pg_stat_activity "
                         "WHERE pid = %s AND datname = current_database()", (pid, pid))


def terminate_all(database_url, application_name):
    """What a restart does to an app's connections: every backend of it ends. How many ended."""
    with pg_connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s", (application_name,)).fetchone()[0]


def organization(slug):
    return {"data": {"type": "organizations", "attributes": {"name": f"Org {slug}", "slug": slug}}}


def headers(token):
    return {"Authorization": f"Bearer {token}", "Accept": JSONAPI, "Content-Type": JSONAPI}


def assert_unavailable(response, code="database_unavailable"):
    """A 503 JSON:API error document with Retry-After (a test client's or a requests answer)."""
    status = getattr(response, "status_code", None)
    content_type = response.headers.get("Content-Type", "")
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert status == 503, (status, text[:1000])
    assert content_type.startswith(JSONAPI), (content_type, text[:500])
    assert response.headers.get("Retry-After") == "1", dict(response.headers)
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    assert body["errors"][0]["status"] == "503" and body["errors"][0]["code"] == code, body
    return body


ORGANIZATIONS = API + "/organizations"
