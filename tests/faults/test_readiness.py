"""/readyz means "this process can serve" (issue 10, finding 10): the database answers and its
schema is at the head revision of this code's migrations; otherwise 503 with a body saying why."""
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from iam.extensions import db
from tests.faults.helpers import pg_connect


def _head_and_previous(app):
    script = ScriptDirectory(app.extensions["migrate"].directory)
    (head,) = script.get_heads()
    return head, script.get_revision(head).down_revision


def _ready(client):
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def test_readyz_on_a_fresh_sqlite_file_is_503_until_it_is_migrated(sqlite_only, make_app, tmp_path, caplog):
    app = make_app("sqlite:///" + str(tmp_path / "fresh.db"))
    client = app.test_client()
    head, previous = _head_and_previous(app)
    status, body = _ready(client)
    assert status == 503 and body == {"status": "unavailable", "database": "ok", "schema": "missing", "head": head}
    with app.app_context():
        upgrade(revision=previous)
    status, body = _ready(client)
    assert status == 503 and body["schema"] == "behind" and body["revision"] == previous and body["head"] == head
    with app.app_context():
        upgrade()
    assert _ready(client) == (200, {"status": "ok", "database": "ok", "schema": "current"})
    assert "not ready" in caplog.text and "Traceback" not in caplog.text


def test_readyz_on_a_fresh_postgresql_database_is_503_until_it_is_migrated(postgresql_only, make_app, database_url):
    fresh = make_url(database_url).database + "_readyz"  # a scratch database next to the test one
    with pg_connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{fresh}"')  # the test role needs CREATEDB (CI's has it)
    try:
        app = make_app(make_url(database_url).set(database=fresh).render_as_string(hide_password=False))
        client = app.test_client()
        head, _ = _head_and_previous(app)
        status, body = _ready(client)
        assert status == 503 and body["schema"] == "missing" and body["head"] == head, body
        with app.app_context():
            upgrade()
        assert _ready(client) == (200, {"status": "ok", "database": "ok", "schema": "current"})
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        with pg_connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


def test_readyz_on_the_migrated_test_database_is_ready(client):
    assert _ready(client.client) == (200, {"status": "ok", "database": "ok", "schema": "current"})
