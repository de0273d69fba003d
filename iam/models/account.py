"""Accounts, the roles granted to them and their API keys."""
from sqlalchemy import (Boolean, ForeignKey, Index, Integer, String, and_, case, event, exists, func, literal_column,
                        or_, select)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import Timestamped
from .types import JSONType, UTCDateTime, trigram_index, utcnow

ACCOUNT_TYPES = ("personal_account", "service_account", "local_account")
AUTH_TYPES = ("password", "sso", "api_key")


class Account(Timestamped, db.Model):
    __tablename__ = "accounts"
    email = mapped_column(String(320), nullable=False)
    account_type = mapped_column(String(32), nullable=False, default="personal_account")
    auth_type = mapped_column(String(32), nullable=False, default="password")
    enabled = mapped_column(Boolean, nullable=False, default=True)
    expires_at = mapped_column(UTCDateTime, nullable=True)
    person_id = mapped_column(ForeignKey("people.id"), nullable=True, unique=True)
    organization_id = mapped_column(ForeignKey("organizations.id"), nullable=True, index=True)
    preferences = mapped_column(JSONType, nullable=False, default=dict)
    consent_given_at = mapped_column(UTCDateTime, nullable=True)
    last_login_at = mapped_column(UTCDateTime, nullable=True)
    # When the account last proved it receives mail at `email` (an invitation accepted, a reset or
    # email-change link followed, a provider's verified email): the ID token's email_verified.
    email_verified_at = mapped_column(UTCDateTime, nullable=True)
    # SCIM (iam/scim/): the identity provider's id for this user, and the enterprise
    # extension's manager (another account of the organization).
    external_id = mapped_column(String(255), nullable=True)
    # SCIM's userName when it is not the email (an identity provider's login name): else None.
    user_name = mapped_column(String(320), nullable=True)
    manager_id = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True)
    # Secrets: never rendered, never filterable except through their dedicated filters.
    password_hash = mapped_column(String(255), nullable=True)
    password_reset_token_digest = mapped_column(String(64), nullable=True, unique=True)
    password_reset_token_expires_at = mapped_column(UTCDateTime, nullable=True)
    # Login throttling: attempts since the last success, and the end of a lock.
    failed_login_count = mapped_column(Integer, nullable=False, default=0, server_default="0")
    locked_until = mapped_column(UTCDateTime, nullable=True)
    # A self-service email change waiting for the link mailed to the new address (a secret too).
    pending_email = mapped_column(String(320), nullable=True)
    email_change_token_digest = mapped_column(String(64), nullable=True)
    email_change_expires_at = mapped_column(UTCDateTime, nullable=True)

    person = relationship("Person", back_populates="account")
    organization = relationship("Organization", back_populates="accounts")
    roles = relationship(
        "AccountRole", back_populates="account", cascade="all, delete-orphan", passive_deletes=True,
        order_by="AccountRole.id",
    )
    api_keys = relationship("ApiKey", back_populates="account", cascade="all, delete-orphan", passive_deletes=True)
    sessions = relationship("AccountSession", back_populates="account", cascade="all, delete-orphan",
                            passive_deletes=True)
    groups = relationship("Group", secondary="group_members", back_populates="members", passive_deletes=True,
                          order_by="Group.id")
    identities = relationship("AccountIdentity", back_populates="account", passive_deletes=True)
    mfa_factors = relationship("MfaFactor", back_populates="account", passive_deletes=True, order_by="MfaFactor.id")

    @hybrid_property
    def mfa_enabled(self):
        """Whether an active second factor (an authenticator app or a passkey) exists (section 9)."""
        from .mfa import SECOND_FACTORS
        return any(f.status == "active" and f.kind in SECOND_FACTORS for f in self.mfa_factors)

    @mfa_enabled.inplace.expression
    @classmethod
    def _mfa_enabled_expression(cls):
        from .mfa import SECOND_FACTORS, MfaFactor
        # Constants written into the SQL: the principal's statement is compiled once and run on
        # the driver (iam/jsonapi/driver.py), where an expanding IN cannot be.
        kinds = [literal_column(f"'{kind}'") for kind in SECOND_FACTORS]
        return exists().where(MfaFactor.account_id == cls.id, MfaFactor.status == literal_column("'active'"),
                              MfaFactor.kind.in_(kinds)).correlate_except(MfaFactor)

    @hybrid_property
    def sso_linked(self):
        """Whether an identity at an identity provider is linked to the account (section 8)."""
        return bool(self.identities)

    @sso_linked.inplace.expression
    @classmethod
    def _sso_linked_expression(cls):
        from .identity import AccountIdentity
        # Correlated to the accounts row only: read beside account_identities (an identity's
        # included account), the subquery keeps its own FROM.
        return exists().where(AccountIdentity.account_id == cls.id).correlate_except(AccountIdentity)

    def is_active(self, now=None):
        now = now or utcnow()
        return self.enabled and (self.expires_at is None or self.expires_at > now)


# Emails are unique and compared case-insensitively; this one index serves both.
Index("uq_accounts_email_lower", func.lower(Account.email), unique=True)
Index("uq_accounts_email_change_token_digest", Account.email_change_token_digest, unique=True)
# `sort=-created_at` and the created_at/expires_at range filters.
Index("ix_accounts_created_at", Account.created_at)
Index("ix_accounts_expires_at", Account.expires_at)
# `email__match`, `email__prefix`, `email__suffix` and `search` are ILIKE '%...%' on PostgreSQL:
# a trigram index answers them without reading every row (migration 0007 enables pg_trgm).
trigram_index("ix_accounts_email_trgm", Account.email)


class AccountRole(Timestamped, db.Model):
    __tablename__ = "account_roles"

    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    name = mapped_column(String(128), nullable=False, index=True)
    scopes = mapped_column(JSONType, nullable=False, default=dict)
    info = mapped_column(JSONType, nullable=False, default=dict)
    not_before = mapped_column(UTCDateTime, nullable=True)
    expires_at = mapped_column(UTCDateTime, nullable=True)
    # The organization the units of an `ou` scope belonged to when the role was granted: the
    # scope reaches units of this organization only (null: no `ou` scope, or it reaches none).
    scope_organization_id = mapped_column(ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True)

    account = relationship("Account", back_populates="roles")

    @classmethod
    def valid_at(cls, now):
        """SQL: the role counts at `now` (not_before <= now < expires_at, nulls unbounded)."""
        return and_(
            or_(cls.not_before.is_(None), cls.not_before <= now),
            or_(cls.expires_at.is_(None), cls.expires_at > now),
        )

    def is_valid(self, now):
        return (self.not_before is None or self.not_before <= now) and (
            self.expires_at is None or self.expires_at > now
        )


@event.listens_for(AccountRole, "before_insert")
def _confine_ou_scope(mapper, connection, role):
    """A role written without `scope_organization_id` (by the server's own code, or a test's)
    is granted in the organization of its first unit; the API sets it after checking every unit."""
    units = (role.scopes or {}).get("ou") if isinstance(role.scopes, dict) else None
    if units and role.scope_organization_id is None:
        from .organization import OrganizationalUnit

        role.scope_organization_id = connection.scalar(
            select(OrganizationalUnit.organization_id).where(OrganizationalUnit.id.in_(units))
            .order_by(OrganizationalUnit.id).limit(1))


class ApiKey(Timestamped, db.Model):
    """A long-lived credential for scripts. Only the SHA-256 digest of the key is stored."""

    __tablename__ = "api_keys"

    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    name = mapped_column(String(255), nullable=False)
    prefix = mapped_column(String(16), nullable=False)
    key_digest = mapped_column(String(64), nullable=False, unique=True)
    scopes = mapped_column(JSONType, nullable=False, default=dict)
    expires_at = mapped_column(UTCDateTime, nullable=True)
    revoked_at = mapped_column(UTCDateTime, nullable=True)
    last_used_at = mapped_column(UTCDateTime, nullable=True)

    account = relationship("Account", back_populates="api_keys")

    def is_usable(self, now):
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @hybrid_property
    def status(self):
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at is not None and self.expires_at <= utcnow() else "active"

    @status.inplace.expression
    @classmethod
    def _status_expression(cls):
        return case((cls.revoked_at.isnot(None), "revoked"),
                    (and_(cls.expires_at.isnot(None), cls.expires_at <= func.current_timestamp()), "expired"),
                    else_="active")
