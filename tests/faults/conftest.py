"""Fixtures for the database-as-a-failing-dependency tests (issue 10).

Each test builds apps of its own (`make_app`) on the database under test, with the timeouts
it needs, sometimes through a TCP proxy it can cut (`pg_proxy`). The suite's session `app`
fixture is requested too: it migrated the database, and the rows are deleted after the test.
Everything stays on 127.0.0.1; nothing here stops or restarts a database server.
"""
import pytest
from sqlalchemy.engine import make_url

from iam import create_app
from iam.extensions import db
from tests.faults.proxy import TcpProxy


@pytest.fixture
def make_app(app, database_url, tmp_path):
    """create_app(...) on the database under test (or `url`), with config overrides; disposed after."""
    made = []

    def make(url=None, **overrides):
        new = create_app({"TESTING": True, "IAM_ENV": "test", "IAM_DATABASE_URL": url or database_url,
                          "PROPAGATE_UNEXPECTED_ERRORS": False, **overrides})
        new.instance_path = str(tmp_path)
        made.append(new)
        return new

    yield make
    for made_app in made:
        with made_app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def pg_proxy(postgresql_only, database_url):
    """A cuttable TCP proxy in front of the PostgreSQL server; `.url` is the database through it."""
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy
    proxy.close()
