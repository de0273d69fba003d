"""The IAM as an OpenID Provider (contract section 10): the applications registered with it
(oauth_clients) and the keys it signs their tokens with (signing_keys)."""
from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import NeverReusedId, Timestamped, table_args
from .types import JSONType, UTCDateTime

CLIENT_TYPES = ("confidential", "public")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CLIENT_SCOPES = ("openid", "profile", "email", "roles", "offline_access")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
SIGNING_ALGORITHMS = ("RS256", "ES256")


class OAuthClient(Timestamped, db.Model):
    """An application. A confidential client's secret is stored as its SHA-256 digest (256
    random bits, shown once)."""

    __tablename__ = "oauth_clients"

    organization_id = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True, index=True)
    name = mapped_column(String(200), nullable=False)
    client_id = mapped_column(String(64), nullable=False, unique=True)
    client_type = mapped_column(String(16), nullable=False, default="confidential")
    secret_digest = mapped_column(String(64), nullable=True)  # a secret: never rendered
    redirect_uris = mapped_column(JSONType, nullable=False, default=list)
    post_logout_redirect_uris = mapped_column(JSONType, nullable=False, default=list)
    grant_types = mapped_column(JSONType, nullable=False, default=list)
    scopes = mapped_column(JSONType, nullable=False, default=list)
    token_endpoint_auth_method = mapped_column(String(32), nullable=False, default="client_secret_basic")
    require_consent = mapped_column(Boolean, nullable=False, default=False)
    service_account_id = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True)

    organization = relationship("Organization")
    service_account = relationship("Account")


class SigningKey(NeverReusedId, db.Model):
    """A key the server signs ID and access tokens with. The private key is sealed
    (secret_store.py); the newest unretired key of an algorithm signs, and every key stays in
    the JWKS until `published_until` (the end of the longest-lived token it could have signed)."""

    __tablename__ = "signing_keys"

    id = mapped_column(db.Integer, primary_key=True)
    kid = mapped_column(String(64), nullable=False, unique=True)
    alg = mapped_column(String(8), nullable=False)
    private_sealed = mapped_column(Text, nullable=False)
    public_jwk = mapped_column(JSONType, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    retired_at = mapped_column(UTCDateTime, nullable=True)
    published_until = mapped_column(UTCDateTime, nullable=True)


class OAuthAuthorizationCode(NeverReusedId, db.Model):
    """An authorization code (stored as its digest): single use, CODE_TTL seconds, bound to its
    client, redirect URI and PKCE challenge. Kept after use (`used_at`, `issued_session_id`) so
    that a replay can end the session it issued."""

    __tablename__ = "oauth_codes"

    id = mapped_column(db.Integer, primary_key=True)
    code_digest = mapped_column(String(64), nullable=False, unique=True)
    client_id = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False, index=True)
    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True)
    browser_session_id = mapped_column(ForeignKey("account_sessions.id", ondelete="SET NULL"), nullable=True,
                                       index=True)
    redirect_uri = mapped_column(Text, nullable=False)
    scope = mapped_column(String(512), nullable=False)
    nonce = mapped_column(String(512), nullable=True)
    code_challenge = mapped_column(String(128), nullable=True)
    code_challenge_method = mapped_column(String(8), nullable=True)
    amr = mapped_column(JSONType, nullable=False, default=list)
    auth_time = mapped_column(UTCDateTime, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at = mapped_column(UTCDateTime, nullable=True)
    issued_session_id = mapped_column(ForeignKey("account_sessions.id", ondelete="SET NULL"), nullable=True,
                                      index=True)

    client = relationship("OAuthClient")


class OAuthConsent(Timestamped, db.Model):
    """The scopes a person allowed a client that asks for consent (one row per account and client)."""

    __tablename__ = "oauth_consents"
    __table_args__ = table_args(db.UniqueConstraint("account_id", "client_id",
                                                    name="uq_oauth_consents_account_id_client_id"))

    account_id = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)
    client_id = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False, index=True)
    scopes = mapped_column(JSONType, nullable=False, default=list)
