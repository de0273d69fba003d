"""Second factors (contract section 9): an account's authenticator apps (TOTP), passkeys
(WebAuthn) and recovery codes, and the short-lived records of a sign-in waiting for one."""
from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import NeverReusedId, Timestamped
from .types import JSONType, UTCDateTime

FACTOR_KINDS = ("totp", "webauthn", "recovery_codes")
FACTOR_STATUSES = ("pending", "active")
# The kinds that make an account's sign-in two-step (recovery codes stand in for them only).
SECOND_FACTORS = ("totp", "webauthn")


class MfaFactor(Timestamped, db.Model):
    """One factor. A TOTP seed is sealed (secret_store.py, purpose `mfa_factors.secret`); a
    passkey keeps its credential id, public key and sign counter; recovery codes are rows of
    MfaRecoveryCode, stored as digests."""

    __tablename__ = "mfa_factors"

    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    kind = mapped_column(String(16), nullable=False)
    name = mapped_column(String(200), nullable=False)
    status = mapped_column(String(16), nullable=False, default="pending")
    last_used_at = mapped_column(UTCDateTime, nullable=True)
    secret_sealed = mapped_column(Text, nullable=True)          # TOTP: never rendered
    last_used_step = mapped_column(BigInteger, nullable=True)    # TOTP: the newest time step accepted
    credential_id = mapped_column(String(1366), nullable=True, unique=True)  # WebAuthn, base64url
    public_key = mapped_column(Text, nullable=True)              # WebAuthn: COSE key, base64url
    sign_count = mapped_column(BigInteger, nullable=True)
    transports = mapped_column(JSONType, nullable=True)
    challenge = mapped_column(String(128), nullable=True)        # WebAuthn registration in progress
    challenge_expires_at = mapped_column(UTCDateTime, nullable=True)

    account = relationship("Account", back_populates="mfa_factors")


class MfaRecoveryCode(NeverReusedId, db.Model):
    """One recovery code of a set, as its SHA-256 digest; used once (used_at)."""

    __tablename__ = "mfa_recovery_codes"

    id = mapped_column(Integer, primary_key=True)
    factor_id = mapped_column(ForeignKey("mfa_factors.id", ondelete="CASCADE"), nullable=False, index=True)
    code_digest = mapped_column(String(64), nullable=False, unique=True)
    used_at = mapped_column(UTCDateTime, nullable=True)


class MfaChallenge(NeverReusedId, db.Model):
    """A sign-in whose first step passed, waiting for the second (`mfa_token`, stored as its
    digest), or a session's step-up in progress (`session_id`): the passkey challenge asked,
    and the wrong codes counted (the token dies after MAX_FAILURES)."""

    __tablename__ = "mfa_challenges"

    id = mapped_column(Integer, primary_key=True)
    token_digest = mapped_column(String(64), nullable=True, unique=True)
    # A sign-in through an identity provider sent back to an application (`return_to`): the
    # sso_code's digest, traded at /auth/sso/exchange for the mfa_token (made then).
    sso_code_digest = mapped_column(String(64), nullable=True, unique=True)
    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    session_id = mapped_column(ForeignKey("account_sessions.id", ondelete="CASCADE"), nullable=True, index=True)
    first_amr = mapped_column(JSONType, nullable=False, default=list)
    failures = mapped_column(Integer, nullable=False, default=0)
    webauthn_challenge = mapped_column(String(128), nullable=True)
    factor_id = mapped_column(ForeignKey("mfa_factors.id", ondelete="CASCADE"), nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at = mapped_column(UTCDateTime, nullable=True)
