"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers too)."""
import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from .extensions import db

log = logging.getLogger(__name__)
blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means "not ready"
        log.warning("readiness check failed", exc_info=True)
        db.session.rollback()
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})
