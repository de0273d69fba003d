"""Fixtures for the database-as-a-failing-dependency tests (issue 10).

Each test builds apps of its own (`make_app`) on the database under test, with the timeouts
it needs, sometimes through a TCP proxy it can cut (`pg_proxy`). The suite's session `app`
fixture is requested too: it migrated the database, and the rows are deleted after the test.
Everything stays on 127.0.0.1; nothing here stops or restarts a database server.
"""
import pytest
from sqlalchemy.engine import make_url

from tests.faults.proxy import TcpProxy


@pytest.fixture
def pg_proxy(postgresql_only, database_url):
    """A cuttable TCP proxy in front of the PostgreSQL server; `.url` is the database through it."""
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy
    proxy.close()
