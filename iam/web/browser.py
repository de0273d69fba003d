"""The browser session: who is signed in at this server's pages.

It is an account session like a login's (listed in the person's account_sessions, ended the
same ways), found by the digest of the `iam_browser` cookie's value. No token of the API is
ever issued for it; applications get sessions of their own, opened from it (iam/oauth/).
"""
import secrets
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import select

from .. import audit
from ..auth import sessions
from ..extensions import db
from ..models import AccountSession, utcnow
from ..models.base import record_activity
from ..resources.common import digest
from . import secure_cookies

COOKIE = "iam_browser"
LAST_USED_RESOLUTION = timedelta(seconds=60)


def current(now=None):
    """The live browser session of this request's cookie (its account may sign in now), else None."""
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 128:
        return None
    now = now or utcnow()
    session = db.session.scalars(select(AccountSession).where(AccountSession.browser_digest == digest(raw))
                                 ).one_or_none()
    idle = timedelta(seconds=current_app.config["IAM_SESSION_IDLE_TIMEOUT"])
    if session is None or not session.is_active(now, idle) or not session.account.is_active(now) \
            or session.enrollment_only:
        return None
    if session.last_used_at is None or now - session.last_used_at > LAST_USED_RESOLUTION:
        record_activity(db.session, session, now, last_used_at=now)
        db.session.commit()
    return session


def adopt(session, response):
    """Make `session` this browser's session: its cookie is set on `response` (the caller commits)."""
    raw = secrets.token_urlsafe(32)
    session.browser_digest = digest(raw)
    response.set_cookie(COOKIE, raw, httponly=True, samesite="Lax", secure=secure_cookies(), path="/")
    return response


def end(session, response, now):
    """Sign this browser out: its session and the application sessions opened from it end."""
    if session is not None:
        sessions.end(session, now)
        sessions.end_opened_from(session.id, now)
        audit.record("logout", actor_id=session.account_id, resource_type="account_sessions", resource_id=session.id,
                     organization_id=session.account.organization_id)
    response.delete_cookie(COOKIE, httponly=True, samesite="Lax", secure=secure_cookies(), path="/")
    return response
