"""Single sign-on: organizations' identity providers, the identities linked to accounts, and
the short-lived records of a sign-in in progress (contract section 8)."""
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import NeverReusedId, Timestamped, table_args
from .types import JSONType, UTCDateTime

DEFAULT_SCOPES = "openid email profile"
# Person attribute -> the claim it is taken from at just-in-time creation.
DEFAULT_CLAIM_MAPPING = {"first_name": "given_name", "last_name": "family_name", "picture_url": "picture"}


def _default_claim_mapping():
    return dict(DEFAULT_CLAIM_MAPPING)


class IdentityProvider(Timestamped, db.Model):
    """An organization's OpenID Connect provider. The client secret is sealed (secret_store.py)."""

    __tablename__ = "identity_providers"

    organization_id = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True)
    name = mapped_column(String(200), nullable=False)
    kind = mapped_column(String(16), nullable=False, default="oidc")
    issuer = mapped_column(String(2048), nullable=False)
    client_id = mapped_column(String(512), nullable=False)
    client_secret_sealed = mapped_column(Text, nullable=True)  # a secret: never rendered, never filterable
    scopes = mapped_column(String(1024), nullable=False, default=DEFAULT_SCOPES)
    email_domains = mapped_column(JSONType, nullable=False, default=list)  # lower case, as the domains table
    jit_provisioning = mapped_column(Boolean, nullable=False, default=False)
    default_roles = mapped_column(JSONType, nullable=False, default=list)
    claim_mapping = mapped_column(JSONType, nullable=False, default=_default_claim_mapping)
    enforced = mapped_column(Boolean, nullable=False, default=False)
    enabled = mapped_column(Boolean, nullable=False, default=True)

    organization = relationship("Organization")
    domains = relationship("IdentityProviderDomain", cascade="all, delete-orphan", passive_deletes=True,
                           order_by="IdentityProviderDomain.domain")


class IdentityProviderDomain(db.Model):
    """An email domain and the one provider it belongs to: the primary key makes a domain
    belong to at most one provider, whatever races two writers run."""

    __tablename__ = "provider_domains"

    domain = mapped_column(String(253), primary_key=True)
    identity_provider_id = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"), nullable=False,
                                         index=True)


class AccountIdentity(Timestamped, db.Model):
    """An account's identity at a provider: the provider's `sub` for it."""

    __tablename__ = "account_identities"
    __table_args__ = table_args(UniqueConstraint("identity_provider_id", "subject"))

    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    identity_provider_id = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"), nullable=False,
                                         index=True)
    subject = mapped_column(String(255), nullable=False)
    email = mapped_column(String(320), nullable=True)
    last_login_at = mapped_column(UTCDateTime, nullable=True)

    account = relationship("Account", back_populates="identities")
    identity_provider = relationship("IdentityProvider")


class SsoAttempt(NeverReusedId, db.Model):
    """A sign-in sent to a provider and waiting for its callback.

    `state` travels through the provider and comes back: only its digest is stored, and the
    callback claims the row once (used_at). `browser_digest` is the digest of a random value
    kept in a cookie of the browser that started, so a callback in another browser (a login
    CSRF, a forwarded link) does not complete. The PKCE verifier is sealed."""

    __tablename__ = "sso_attempts"

    id = mapped_column(Integer, primary_key=True)
    state_digest = mapped_column(String(64), nullable=False, unique=True)
    browser_digest = mapped_column(String(64), nullable=False)
    identity_provider_id = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"), nullable=False,
                                         index=True)
    nonce = mapped_column(String(128), nullable=False)
    code_verifier_sealed = mapped_column(Text, nullable=False)
    return_to = mapped_column(String(2048), nullable=True)
    invitation_id = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"), nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at = mapped_column(UTCDateTime, nullable=True)


class SsoCode(NeverReusedId, db.Model):
    """A signed-in browser sent back to `return_to?sso_code=...`: the code, traded once within
    60 seconds at POST /auth/sso/exchange for the login answer, stored as its digest."""

    __tablename__ = "sso_codes"

    id = mapped_column(Integer, primary_key=True)
    code_digest = mapped_column(String(64), nullable=False, unique=True)
    session_id = mapped_column(ForeignKey("account_sessions.id", ondelete="CASCADE"), nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at = mapped_column(UTCDateTime, nullable=True)
