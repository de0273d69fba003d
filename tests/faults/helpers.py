"""Helpers of the fault tests: a live server, side connections, log checks."""
import contextlib
import threading

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
