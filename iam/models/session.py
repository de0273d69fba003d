"""Login sessions, their single-use refresh tokens, and the audit trail."""
from sqlalchemy import Boolean, ForeignKey, Integer, String, case, false, func
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import NeverReusedId, Timestamped
from .types import JSONType, UTCDateTime, utcnow

SESSION_STATUSES = ("active", "revoked", "expired")


class AccountSession(Timestamped, db.Model):
    """One per login. Access tokens name their session (`sid`) and die with it."""

    __tablename__ = "account_sessions"

    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    api_key_id = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True, index=True)
    user_agent = mapped_column(String(512), nullable=True)
    ip = mapped_column(String(64), nullable=True)
    last_used_at = mapped_column(UTCDateTime, nullable=True)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    revoked_at = mapped_column(UTCDateTime, nullable=True)
    read_only = mapped_column(Boolean, nullable=False, default=False)
    # How the session was authenticated (RFC 8176 values: "pwd", "sso", ...; "api_key" for a
    # key's login) and when a factor was last proven in it.
    amr = mapped_column(JSONType, nullable=True)
    auth_time = mapped_column(UTCDateTime, nullable=True)
    # When a second factor was last proven in this session (step-up needs one within 10 minutes).
    mfa_at = mapped_column(UTCDateTime, nullable=True)
    # A session that may only enrol a second factor (an mfa_required policy, no factor yet).
    enrollment_only = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # The sign-in pages' browser session (iam/web/): the SHA-256 digest of its cookie's value.
    browser_digest = mapped_column(String(64), nullable=True, unique=True, index=True)
    # An application's session (iam/oauth/): the client it was granted to, and the browser
    # session it was granted from (signing out there ends it too).
    oauth_client_id = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=True, index=True)
    parent_id = mapped_column(ForeignKey("account_sessions.id", ondelete="SET NULL"), nullable=True, index=True)
    oauth_scope = mapped_column(String(512), nullable=True)  # the scope granted to the application

    account = relationship("Account", back_populates="sessions")
    api_key = relationship("ApiKey")

    def is_active(self, now=None, idle_timeout=None):
        """Not ended, not past its absolute lifetime, and (given a timeout) not idle too long."""
        now = now or utcnow()
        if self.revoked_at is not None or self.expires_at <= now:
            return False
        return idle_timeout is None or self.last_used_at is None or now - self.last_used_at < idle_timeout

    @hybrid_property
    def status(self):
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.expires_at > utcnow() else "expired"

    @status.inplace.expression
    @classmethod
    def _status_expression(cls):
        return case((cls.revoked_at.isnot(None), "revoked"),
                    (cls.expires_at <= func.current_timestamp(), "expired"), else_="active")


class RefreshToken(NeverReusedId, db.Model):
    """A refresh token, stored as its SHA-256 digest; each works once (`used_at`)."""

    __tablename__ = "refresh_tokens"

    id = mapped_column(Integer, primary_key=True)
    session_id = mapped_column(ForeignKey("account_sessions.id", ondelete="CASCADE"), nullable=False, index=True)
    token_digest = mapped_column(String(64), nullable=False, unique=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    used_at = mapped_column(UTCDateTime, nullable=True)

    session = relationship("AccountSession")


class AuditEvent(Timestamped, db.Model):
    """Append-only record of who did what. No foreign keys: events outlive what they describe."""

    __tablename__ = "audit_events"

    actor_account_id = mapped_column(Integer, nullable=True, index=True)
    action = mapped_column(String(64), nullable=False, index=True)
    resource_type = mapped_column(String(64), nullable=True, index=True)
    resource_id = mapped_column(String(64), nullable=True)
    organization_id = mapped_column(Integer, nullable=True, index=True)
    changes = mapped_column(JSONType, nullable=False, default=dict)
    ip = mapped_column(String(64), nullable=True)
