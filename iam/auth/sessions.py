"""Sessions: a login opens one; access tokens name it; refresh tokens rotate inside it.

A refresh token is 256 random bits shown once and stored as its SHA-256 digest. Using it
marks it used (one UPDATE ... WHERE used_at IS NULL, so two parallel uses cannot both win)
and issues a new pair. Presenting a used token means it leaked: the whole session ends and
a `token_reuse` event is written.
"""
import secrets
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from .. import audit
from ..extensions import db
from ..models import AccountSession, RefreshToken
from ..models.base import record_activity
from ..resources.common import digest


SECOND_FACTOR_AMR = frozenset({"otp", "hwk"})


def open_session(account, now, api_key=None, read_only=False, lifetime=None, amr=None, enrollment_only=False):
    """A new session; `amr`: how it was authenticated (RFC 8176 names; default "pwd", or
    "api_key" for a key's login), proven now (`auth_time`, and `mfa_at` when a second factor
    was); `enrollment_only`: it may only enrol a second factor (principal.py)."""
    lifetime = lifetime or current_app.config["IAM_REFRESH_TOKEN_TTL"]
    amr = list(amr) if amr else (["api_key"] if api_key else ["pwd"])
    session = AccountSession(
        account_id=account.id, api_key_id=api_key.id if api_key else None,
        ip=request.remote_addr, user_agent=(request.user_agent.string or None) and request.user_agent.string[:512],
        expires_at=now + timedelta(seconds=lifetime), last_used_at=now, read_only=read_only,
        amr=amr, auth_time=now, created_at=now, mfa_at=now if SECOND_FACTOR_AMR & set(amr) else None,
        enrollment_only=enrollment_only,
    )
    db.session.add(session)
    db.session.flush()
    return session


def prove_second_factor(session, now, amr, **values):
    """Record in `session` that a second factor (`amr`: "otp" or "hwk") was proven now: its
    `mfa_at` (step-up), its `amr`; `values`: more columns to write with it. Bookkeeping, no
    version check: parallel requests of one session must not fail each other."""
    amrs = list(session.amr or [])
    record_activity(db.session, session, now, mfa_at=now, amr=amrs if amr in amrs else [*amrs, amr], **values)


def new_refresh_token(session):
    raw = secrets.token_urlsafe(32)
    db.session.add(RefreshToken(session_id=session.id, token_digest=digest(raw)))
    return raw


class RefreshRefused(Exception):
    """The refresh token is unknown, used, or its session cannot continue."""


def rotate(raw, now, client_row_id=None):
    """(session, new raw refresh token) for a valid unused token; RefreshRefused otherwise.
    `client_row_id`: the oauth_clients row whose application session the token must belong
    to (None: a session of this API, never an application's)."""
    token = db.session.scalars(
        select(RefreshToken).where(RefreshToken.token_digest == digest(raw))
        .options(joinedload(RefreshToken.session).joinedload(AccountSession.account))
    ).one_or_none()
    if token is None or token.session.oauth_client_id != client_row_id:
        raise RefreshRefused()
    session = token.session
    claimed = db.session.execute(
        update(RefreshToken).where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if not claimed:
        end(session, now)
        audit.record("token_reuse", actor_id=session.account_id, resource_type="account_sessions",
                     resource_id=session.id, organization_id=session.account.organization_id)
        db.session.commit()
        raise RefreshRefused()
    idle = timedelta(seconds=current_app.config["IAM_SESSION_IDLE_TIMEOUT"])
    if not session.is_active(now, idle) or not session.account.is_active(now):
        db.session.rollback()
        raise RefreshRefused()
    record_activity(db.session, session, now, last_used_at=now)
    return session, new_refresh_token(session)


def end(session, now):
    """Revoke the session (once: a second end keeps the first time); parallel ends cannot 412."""
    if session.revoked_at is None:
        record_activity(db.session, session, now, AccountSession.revoked_at.is_(None), revoked_at=now)


def end_opened_from(session_id, now):
    """End the application sessions an application opened from this browser session (the
    sign-in pages' single sign-on, `parent_id`): ending a browser session on purpose (signing
    out, DELETE /account_sessions/:id) signs its applications out too."""
    db.session.execute(update(AccountSession).where(AccountSession.parent_id == session_id,
                                                    AccountSession.revoked_at.is_(None))
                       .values(revoked_at=now, version=AccountSession.version + 1)
                       .execution_options(synchronize_session=False))


def end_all(account_id, now, keep=None):
    """End every session of an account (but `keep`), e.g. after a password change."""
    stmt = update(AccountSession).where(AccountSession.account_id == account_id,
                                        AccountSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AccountSession.id != keep)
    db.session.execute(stmt.values(revoked_at=now, version=AccountSession.version + 1))
