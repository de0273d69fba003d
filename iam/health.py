"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers
and its schema is at the head revision of this code's migrations)."""
import logging
import os

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .extensions import db
from .jsonapi.errors import RETRY_AFTER, describe_database_error

log = logging.getLogger(__name__)
blueprint = Blueprint("health", __name__)

_revisions = {}  # migrations directory -> (head revisions, every known revision), read once per process


def _known_revisions():
    directory = os.path.abspath(current_app.extensions["migrate"].directory)
    if directory not in _revisions:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory(directory)
        _revisions[directory] = (frozenset(script.get_heads()),
                                 frozenset(s.revision for s in script.walk_revisions()))
    return _revisions[directory]


@blueprint.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


def _not_ready(body, reason):
    log.warning("not ready: %s", reason)
    response = jsonify({"status": "unavailable", **body})
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER
    return response


@blueprint.get("/readyz")
def readyz():
    """One query. Not ready (503): the database cannot be reached, or its schema is missing or
    behind this code's head. A revision this code does not know (a newer release migrated the
    database) stays ready, so old processes keep serving during a rolling deploy."""
    heads, known = _known_revisions()
    try:
        stored = set(db.session.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the connection is gone; the teardown drops it
            pass
        if not _is_missing_table(exc):
            return _not_ready({"database": "unreachable"}, describe_database_error(exc))
        return _not_ready({"database": "ok", "schema": "missing", "head": _one(heads)},
                          "the database has no schema (run `flask db upgrade`)")
    if stored == heads:
        return jsonify({"status": "ok", "database": "ok", "schema": "current"})
    if stored and stored <= known:
        return _not_ready({"database": "ok", "schema": "behind", "revision": _one(stored), "head": _one(heads)},
                          f"the schema is at {_one(stored)}, this code needs {_one(heads)} (run `flask db upgrade`)")
    if not stored:
        return _not_ready({"database": "ok", "schema": "missing", "head": _one(heads)},
                          "the database has no schema revision (run `flask db upgrade`)")
    return jsonify({"status": "ok", "database": "ok", "schema": "newer", "revision": _one(stored)})


def _one(revisions):
    return ",".join(sorted(revisions))


def _is_missing_table(exc):
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "42P01":  # PostgreSQL undefined_table
        return True
    return "no such table" in str(orig or exc)  # SQLite
