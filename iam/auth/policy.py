"""The one place that decides who may see and do what.

Visibility is an SQL predicate per resource type, applied by the engine to every list,
count, show, include, relationship read and id check in a body. Deny by default: a type
not named here is invisible to anyone but a global admin.

Until role-based authorization lands (section 6 of the contract: org_admin, ou_manager,
auditor), a principal that is not a global admin sees only its own account and what hangs
off it, may use only the self-service types (its sessions and API keys) and /accounts/me.
"""
from sqlalchemy import false, select

from ..jsonapi import Policy
from ..jsonapi.errors import forbidden
from ..models import (Account, AccountRole, AccountSession, ApiKey, Organization, OrganizationalUnit,
                      Person)

SELF_SERVICE = frozenset({"account_sessions", "api_keys"})
READ_ACTIONS = frozenset({"list", "show"})


def _own(principal):
    """Predicates for the rows that belong to the principal itself, by model."""
    me = principal.account_id
    own_person = select(Account.person_id).where(Account.id == me).scalar_subquery()
    return {
        Account: Account.id == me,
        AccountRole: AccountRole.account_id == me,
        AccountSession: AccountSession.account_id == me,
        ApiKey: ApiKey.account_id == me,
        Person: Person.id == own_person,
        Organization: Organization.id == select(Account.organization_id).where(Account.id == me).scalar_subquery(),
        OrganizationalUnit: OrganizationalUnit.id == select(Person.organizational_unit_id)
        .where(Person.id == own_person).scalar_subquery(),
    }


class IamPolicy(Policy):
    def visible(self, ctx, resource):
        principal = ctx.principal
        if principal is None:
            return false()
        if principal.is_admin:
            return None
        return _own(principal).get(resource.model, false())

    def authorize(self, ctx, resource, action, obj=None):
        principal = ctx.principal
        if principal.read_only and action not in READ_ACTIONS:
            raise forbidden("This API key is read-only.")
        if principal.is_admin or resource.type in SELF_SERVICE:
            return
        raise forbidden("Only administrators may use this endpoint for now.")
