"""SQLite: work outside a request (background jobs, the CLI, start-up) that reads then writes
takes the write lock when its transaction begins.

A transaction that began with a read (BEGIN DEFERRED) cannot become a writer once another
connection has committed after its read: SQLite answers "database is locked" at once
(SQLITE_BUSY_SNAPSHOT; no busy timeout helps). The password-reset job read the account,
a login committed meanwhile, and the job's write failed: the client already had its 204,
so the reset mail was silently lost.
"""
import sqlite3
import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import event

from iam import create_app
from iam.auth import password_views
from iam.extensions import db
from tests.helpers import Factory


@pytest.fixture
def sqlite_app(tmp_path, smtp_inbox_factory):
    path = tmp_path / "iam.db"
    app = create_app({"TESTING": True, "IAM_ENV": "test", "IAM_DATABASE_URL": f"sqlite:///{path}"})
    with app.app_context():
        upgrade()
    app.db_path = str(path)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def smtp_inbox_factory():
    from aiosmtpd.controller import Controller

    from tests.helpers import Inbox, free_port

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.url = f"smtp://127.0.0.1:{controller.port}"
    yield handler
    controller.stop()


def test_a_background_job_keeps_its_write_when_another_writer_commits_after_its_read(sqlite_app,
                                                                                     smtp_inbox_factory):
    app = sqlite_app
    app.config["IAM_MAIL_URL"] = smtp_inbox_factory.url
    account = Factory(app).account(email="ada@example.com")
    job_thread = {}

    def another_writer_commits(conn, cursor, statement, *args):
        """Just before the job's first write: another connection commits a write of its own
        (a login recording itself, say), if it can get the lock."""
        if threading.get_ident() != job_thread.get("id") or job_thread.get("done"):
            return
        if not statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            return
        job_thread["done"] = True
        other = sqlite3.connect(app.db_path, timeout=0.2)
        try:
            other.execute("UPDATE accounts SET last_login_at = CURRENT_TIMESTAMP WHERE id = ?", (account.id,))
            other.commit()
            job_thread["other_wrote"] = True
        except sqlite3.OperationalError:  # the job holds the write lock: the other writer waits its turn
            job_thread["other_wrote"] = False
        finally:
            other.close()

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", another_writer_commits)
    try:
        def job():
            job_thread["id"] = threading.get_ident()
            password_views._issue_reset(app, "ada@example.com", "127.0.0.1")

        worker = threading.Thread(target=job)
        worker.start()
        worker.join(timeout=20)
    finally:
        event.remove(engine, "before_cursor_execute", another_writer_commits)
    assert job_thread.get("done"), "the job never wrote"
    message = smtp_inbox_factory.wait(1)
    assert message["To"] == "ada@example.com" and "reset" in message["Subject"].lower()
    assert job_thread["other_wrote"] is False  # it had to wait for the job's transaction
    with app.app_context():
        from iam.models import Account
        assert db.session.get(Account, account.id).password_reset_token_digest is not None
