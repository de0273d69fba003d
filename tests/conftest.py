"""Fixtures: every API test runs on SQLite and, when IAM_TEST_DATABASE_URL is set, PostgreSQL.

Each database is brought to the current schema by the real migrations once per session;
after every test all rows are deleted (real commits, so threads and live servers see the
same data as the test). The PostgreSQL database named by IAM_TEST_DATABASE_URL is wiped:
point it at a database that exists for tests only.
"""
import os

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, event, text

from iam import create_app
from iam.extensions import db
from tests.helpers import ApiClient, Factory, Inbox, delete_all_rows, free_port
from tests.jsonapi_document import ValidatingFlaskClient, ValidatingMiddleware

PG_URL = os.environ.get("IAM_TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_configure(config):
    """Every Flask app built in the tests (the IAM app, the engine's app, any other) gets a test
    client that checks each response against JSON:API 1.1 (tests/jsonapi_document.py)."""
    Flask.test_client_class = ValidatingFlaskClient
    config.addinivalue_line("markers", "databases(*names): the test applies to these databases only "
                                       "(it is not collected for the others; nothing is skipped)")


# Fixtures that mean "this test is about one database".
_DATABASE_FIXTURES = {"postgresql_only": "postgresql", "sqlite_only": "sqlite"}


def pytest_collection_modifyitems(config, items):
    """A test that applies to one database is not collected for the other: CI runs every test it
    collects and allows no skip (`IAM_TEST_NO_SKIPS`, set by .ci/run)."""
    keep, drop = [], []
    for item in items:
        database = getattr(item, "callspec", None) and item.callspec.params.get("database_url")
        wanted = {name for fixture, name in _DATABASE_FIXTURES.items() if fixture in item.fixturenames}
        for marker in item.iter_markers("databases"):
            wanted |= set(marker.args)
        if wanted and database not in wanted:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """CI never skips a test: with IAM_TEST_NO_SKIPS set, one skipped test fails the run."""
    if os.environ.get("IAM_TEST_NO_SKIPS") and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped, and CI allows none (IAM_TEST_NO_SKIPS):")
        for nodeid in _skipped[:50]:
            print("  " + nodeid)
        session.exitstatus = 1


@pytest.fixture
def postgresql_only():
    """Requested by tests about PostgreSQL alone (collected for that database only)."""


@pytest.fixture
def sqlite_only():
    """Requested by tests about SQLite alone (collected for that database only)."""


def wipe_postgresql(url, schema="public"):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "iam.db")
    wipe_postgresql(PG_URL)
    return PG_URL


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    app = create_app({
        "TESTING": True,
        "IAM_ENV": "test",
        "IAM_DATABASE_URL": database_url,
        "PROPAGATE_UNEXPECTED_ERRORS": False,
    })
    app.instance_path = str(tmp_path_factory.mktemp("instance"))
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(autouse=True)
def _clean_database(request):
    """Delete every row after each test that used the database."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    app.extensions["iam_limiter"].reset()
    with app.app_context():
        delete_all_rows(db)


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
def dialect(app):
    with app.app_context():
        return db.engine.dialect.name


@pytest.fixture
def factory(app):
    return Factory(app)


@pytest.fixture
def client(app):
    return ApiClient(app.test_client())


@pytest.fixture
def admin_account(factory):
    return factory.account(email="admin@example.com", roles=["admin"])


@pytest.fixture
def admin(app, factory, admin_account):
    """An ApiClient logged in as a global admin."""
    return ApiClient(app.test_client(), factory.token(admin_account))


@pytest.fixture
def user(app, factory):
    """An ApiClient logged in as a plain account (no roles)."""
    account = factory.account(email="plain@example.com")
    api = ApiClient(app.test_client(), factory.token(account))
    api.account = account
    return api


@pytest.fixture
def count_queries(app):
    """Context manager counting SQL statements sent to the database."""
    from contextlib import contextmanager

    @contextmanager
    def counter():
        statements = []

        def listener(conn, cursor, statement, *args):
            # Transaction control (the explicit BEGIN on SQLite) is not a query.
            if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
                statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", listener)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", listener)

    return counter


@pytest.fixture
def smtp_inbox(app):
    """A real SMTP server on 127.0.0.1 for the duration of a test; the app sends its mail there."""
    from aiosmtpd.controller import Controller

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config["IAM_MAIL_URL"] = f"smtp://127.0.0.1:{controller.port}"
    yield handler
    app.config["IAM_MAIL_URL"] = ""
    controller.stop()


@pytest.fixture
def three_failures_a_minute(app):
    """IAM_LOGIN_RATE_LIMIT at 3 failures a minute for the test."""
    default = app.config["IAM_LOGIN_RATE_LIMIT"]
    app.config["IAM_LOGIN_RATE_LIMIT"] = "3 per minute"
    yield
    app.config["IAM_LOGIN_RATE_LIMIT"] = default


@pytest.fixture
def live_server(app):
    """The app on a real socket (127.0.0.1, a free port) for clients that speak HTTP themselves."""
    import threading

    from werkzeug.serving import make_server

    # Every response served is checked as a JSON:API document; problems fail the test at teardown.
    checked = ValidatingMiddleware(app)
    server = make_server("127.0.0.1", 0, checked, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    if checked.violations:
        pytest.fail(f"{len(checked.violations)} response(s) of the live server broke JSON:API 1.1:\n\n"
                    + "\n\n".join(checked.violations[:3]), pytrace=False)
