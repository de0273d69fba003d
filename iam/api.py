"""The /api/v3/iam blueprint: every resource and endpoint of the contract, registered once."""
from flask import Blueprint

from . import audit, docs
from .auth import email_change, password_views
from .auth import views as auth_views
from .auth.policy import IamPolicy
from .auth.principal import authenticate
from .extensions import db
from .jsonapi import Api
from .resources import me
from .resources.account_roles import AccountRoles
from .resources.account_sessions import AccountSessions
from .resources.api_keys import ApiKeys
from .resources.audit_events import AuditEvents
from .resources.groups import Groups
from .resources.identity_providers import AccountIdentities, IdentityProviders
from .resources.invitations import Invitations
from .resources.mfa_factors import MfaFactors
from .resources.oauth_clients import OAuthClients
from .resources.accounts import Accounts
from .resources.organizational_units import OrganizationalUnits
from .resources.organizations import Organizations
from .resources.people import People
from .resources.settings import Settings
from .mfa import signin as mfa_signin
from .sso import flow as sso_flow
from .sso import realm as sso_realm

PREFIX = "/api/v3/iam"

blueprint = Blueprint("iam", __name__, url_prefix=PREFIX)
api = Api(blueprint, db, authenticate=authenticate, policy=IamPolicy(), on_change=audit.record_change)

for resource in (Accounts, People, Organizations, OrganizationalUnits, AccountRoles, AccountSessions, ApiKeys,
                 AuditEvents, Settings, Invitations, Groups, IdentityProviders, AccountIdentities, MfaFactors,
                 OAuthClients):
    api.register(resource)

me.register(api)
auth_views.register(api)
password_views.register(api)
email_change.register(api)
sso_realm.register(api)
sso_flow.register(api)
mfa_signin.register(api)
docs.register(api)  # last: the document describes every route registered above
