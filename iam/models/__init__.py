"""SQLAlchemy models, a module per concept."""
from .account import ACCOUNT_TYPES, AUTH_TYPES, Account, AccountRole, ApiKey
from .organization import Organization, OrganizationalUnit
from .person import Person
from .session import SESSION_STATUSES, AccountSession, AuditEvent, RefreshToken
from .group import Group, group_members
from .invitation import INVITATION_STATUSES, Invitation
from .identity import AccountIdentity, IdentityProvider, IdentityProviderDomain, SsoAttempt, SsoCode
from .mfa import FACTOR_KINDS, FACTOR_STATUSES, SECOND_FACTORS, MfaChallenge, MfaFactor, MfaRecoveryCode
from .oauth import (AUTH_METHODS, CLIENT_SCOPES, CLIENT_TYPES, GRANT_TYPES, SIGNING_ALGORITHMS,
                    OAuthAuthorizationCode, OAuthClient, OAuthConsent, SigningKey)
from .setting import Setting
from .types import utcnow

__all__ = [
    "ACCOUNT_TYPES", "AUTH_TYPES", "Account", "AccountRole", "ApiKey", "Organization",
    "OrganizationalUnit", "Person", "utcnow", "SESSION_STATUSES", "AccountSession", "AuditEvent",
    "RefreshToken", "Setting", "INVITATION_STATUSES", "Invitation", "Group", "group_members",
    "AccountIdentity", "IdentityProvider", "IdentityProviderDomain", "SsoAttempt", "SsoCode",
    "FACTOR_KINDS", "FACTOR_STATUSES", "SECOND_FACTORS", "MfaChallenge", "MfaFactor", "MfaRecoveryCode",
    "AUTH_METHODS", "CLIENT_SCOPES", "CLIENT_TYPES", "GRANT_TYPES", "SIGNING_ALGORITHMS", "OAuthClient", "SigningKey",
    "OAuthAuthorizationCode", "OAuthConsent",
]
