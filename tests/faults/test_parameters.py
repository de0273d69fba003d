"""No log carries a statement's bound parameters (issue 10, finding 5): the engine hides them
(hide_parameters), and PostgreSQL's messages are cut to their primary line (DETAIL repeats
whole rows: `Failing row contains (..., $argon2id$..., ...)`; a data error quotes the value)."""
import logging

import pytest
from sqlalchemy import text

from iam.extensions import db
from iam.models import Account

MARKER = "$argon2id$v=19$m=65536,t=3,p=4$SECRET-MARKER-7f3a"


def _routes(app):
    """Views that fail in the ways a real one could, reaching the app's error handlers."""
    def insert_without_email():  # the bootstrap insert, failing: the hash is in the row
        db.session.add(Account(email=None, password_hash=MARKER, account_type="local_account", auth_type="password"))
        db.session.commit()

    def statement_on_a_missing_table():  # a genuine bug: a 500 with its traceback in the log
        db.session.execute(text("INSERT INTO no_such_table (secret) VALUES (:secret)"), {"secret": MARKER})

    def value_of_the_wrong_type():  # PostgreSQL quotes the value in the primary message
        db.session.execute(text("SELECT CAST(:secret AS integer)"), {"secret": MARKER})

    for view in (insert_without_email, statement_on_a_missing_table, value_of_the_wrong_type):
        app.add_url_rule(f"/_faults/{view.__name__}", view.__name__, view, methods=["POST"])


@pytest.mark.parametrize("view, status", [
    # On SQLite neither applies: its constraint messages name the column, never the row, and it casts anything.
    pytest.param("insert_without_email", 409, marks=pytest.mark.databases("postgresql")),
    ("statement_on_a_missing_table", 500),
    pytest.param("value_of_the_wrong_type", 500, marks=pytest.mark.databases("postgresql"))])
def test_failed_statements_log_no_bound_parameter(make_app, dialect, caplog, view, status):
    caplog.set_level(logging.INFO)
    app = make_app()
    _routes(app)
    response = app.test_client().post(f"/_faults/{view}")
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert MARKER not in response.get_data(as_text=True)
    assert caplog.records, "the failure was logged"
    if status == 500:
        assert any(record.exc_info for record in caplog.records), "a genuine error keeps its traceback"
    assert "SECRET-MARKER" not in caplog.text


def test_exception_texts_and_tracebacks_carry_no_bound_parameter(make_app, dialect, caplog):
    app = make_app()
    with app.app_context():
        for statement, params in [("INSERT INTO no_such_table (secret) VALUES (:secret)", {"secret": MARKER}),
                                  ("INSERT INTO accounts (email, password_hash) VALUES (NULL, :secret)",
                                   {"secret": MARKER})]:
            with pytest.raises(Exception) as caught:
                db.session.execute(text(statement), params)
            db.session.rollback()
            logging.getLogger("tests.faults").error("failed", exc_info=caught.value)
            assert "SECRET-MARKER" not in str(caught.value)
            assert "SECRET-MARKER" not in str(caught.value.orig)
            assert "hidden due to hide_parameters" in str(caught.value)
    assert caplog.text.count("Traceback") >= 2  # each with its chained driver exception
    assert "SECRET-MARKER" not in caplog.text
    if dialect == "postgresql":
        assert "null value in column" in caplog.text  # the primary message stays
