"""The one place that decides who may see and do what (section 6 of the contract).

A principal's roles that are valid now become grants:
- `admin` with scopes `{}`: everything.
- `org_admin` with `{"organization": [ids]}`: everything inside those organizations, but it
  may not grant `admin` nor any scope it does not hold itself.
- `ou_manager` with `{"ou": [ids]}`: read and update the people and accounts in those units
  and below.
- `auditor` with `{"organization": [ids]}`: read everything in those organizations,
  audit events included, change nothing.
Everyone may read and self-manage their own account, person, sessions and API keys (of their
person, the SELF_SERVICE_PERSON attributes; more only where a role reaches it as anyone's).

A scope reaches only inside the organization the role was granted in: an `ou` scope the units
of the role's `scope_organization_id` (recorded when it was granted), a group's roles that
group's organization. So no unit or organization created or moved later widens an old grant.

Each grant becomes SQL: `visible` (what exists for the caller: lists, counts, includes,
shows, relationship reads, ids in bodies), `writable` (visible rows it may change),
`assignable` (rows an id in a body may point at). Deny by default: a type not named here
is visible to global admins only.
"""
from dataclasses import dataclass

from flask import g
from sqlalchemy import and_, false, or_, select

from ..jsonapi import JsonApiErrors, Policy
from ..jsonapi.errors import forbidden
from ..models import (Account, AccountRole, AccountSession, ApiKey, AuditEvent, Group, Invitation, MfaFactor,
                      OAuthClient,
                      Organization, OrganizationalUnit, Person, group_members, AccountIdentity,
                      IdentityProvider)

READ_ACTIONS = frozenset({"list", "show"})
# Types no one but a global admin may even read.
ADMIN_ONLY_TYPES = frozenset({"settings"})
# Roles that carry rights on the IAM itself.
PRIVILEGED_ROLES = frozenset({"admin", "org_admin", "ou_manager", "auditor"})
Unit = OrganizationalUnit


@dataclass(frozen=True)
class Grants:
    admin: bool
    admin_orgs: frozenset      # org_admin
    audit_orgs: frozenset      # auditor
    managed_units: frozenset   # ou_manager: (unit id, the organization the grant is confined to)

    @property
    def read_orgs(self):
        return self.admin_orgs | self.audit_orgs


def _ids(role, kind):
    ids = role.scopes.get(kind) if isinstance(role.scopes, dict) else None
    return {i for i in ids if isinstance(i, int) and not isinstance(i, bool)} if isinstance(ids, list) else set()


def _confined_to(role):
    """The organization a role's scopes may reach inside: its group's, or where its ou scope was granted."""
    group_org = getattr(role, "group_organization_id", None)
    return group_org if group_org is not None else getattr(role, "scope_organization_id", None)


def grants_of(principal):
    """The principal's grants, from its roles valid now (computed once per request)."""
    cached = g.get("iam_grants")
    if cached is not None and cached[0] is principal:
        return cached[1]
    admin_orgs, audit_orgs, units = set(), set(), set()
    for role in principal.roles:
        group_org = getattr(role, "group_organization_id", None)
        if role.name in ("org_admin", "auditor"):
            orgs = _ids(role, "organization")
            if group_org is not None:  # a group's roles reach inside its organization only
                orgs &= {group_org}
            (admin_orgs if role.name == "org_admin" else audit_orgs).update(orgs)
        elif role.name == "ou_manager":
            org = _confined_to(role)
            if org is not None:  # an ou scope with no organization recorded reaches no unit
                units |= {(unit, org) for unit in _ids(role, "ou")}
    grants = Grants(principal.is_admin, frozenset(admin_orgs), frozenset(audit_orgs), frozenset(units))
    g.iam_grants = (principal, grants)
    return grants


def subtree(managed):
    """Ids of these units and every unit below them (a unit's ancestry prefixes its descendants'),
    each inside the organization its grant is confined to: `managed` holds (unit id, organization id)."""
    parts = []
    for unit_id, org_id in sorted(managed):
        prefix = select(Unit.ancestry).where(Unit.id == unit_id, Unit.organization_id == org_id).scalar_subquery()
        parts.append(and_(Unit.organization_id == org_id, Unit.ancestry.startswith(prefix)))
    return select(Unit.id).where(or_(*parts))


def _own_person(principal):
    return select(Account.person_id).where(Account.id == principal.account_id).scalar_subquery()


def _accounts(principal, orgs, units):
    parts = [Account.id == principal.account_id]
    if orgs:
        parts.append(Account.organization_id.in_(orgs))
    if units:
        parts.append(Account.person.has(Person.organizational_unit_id.in_(subtree(units))))
    return or_(*parts)


def _people(principal, orgs, units, own=True):
    parts = [Person.id == _own_person(principal)] if own else []
    if orgs:
        parts.append(Person.organization_id.in_(orgs))
    if units:
        parts.append(Person.organizational_unit_id.in_(subtree(units)))
    return or_(*parts) if parts else false()


def visible_predicate(principal, model):
    """What exists for this principal, for one model (None: everything)."""
    grants = grants_of(principal)
    if grants.admin:
        return None
    orgs, units, me = grants.read_orgs, grants.managed_units, principal.account_id
    if model is Account:
        return _accounts(principal, orgs, units)
    if model is Person:
        return _people(principal, orgs, units)
    if model is Organization:
        parts = [Organization.id == select(Account.organization_id).where(Account.id == me).scalar_subquery()]
        if orgs:
            parts.append(Organization.id.in_(orgs))
        if units:
            parts.append(Organization.id.in_(select(Unit.organization_id).where(Unit.id.in_(subtree(units)))))
        return or_(*parts)
    if model is Unit:
        parts = [Unit.id == select(Person.organizational_unit_id).where(Person.id == _own_person(principal))
                 .scalar_subquery()]
        if orgs:
            parts.append(Unit.organization_id.in_(orgs))
        if units:
            parts.append(Unit.id.in_(subtree(units)))
        return or_(*parts)
    if model is AccountRole:
        return AccountRole.account.has(_accounts(principal, orgs, units))
    if model in (AccountSession, ApiKey):
        parts = [model.account_id == me]
        if orgs:
            parts.append(model.account.has(Account.organization_id.in_(orgs)))
        return or_(*parts)
    if model is Invitation:
        return Invitation.organization_id.in_(orgs) if orgs else false()
    if model is Group:  # one's own groups, and every group of the organizations one reads
        parts = [Group.members.any(Account.id == me)]
        if orgs:
            parts.append(Group.organization_id.in_(orgs))
        return or_(*parts)
    if model is OAuthClient:  # managed by admins, and org_admins for their organizations
        return OAuthClient.organization_id.in_(grants.admin_orgs) if grants.admin_orgs else false()
    if model is IdentityProvider:  # managed by the organization's admins; its auditors read them
        return IdentityProvider.organization_id.in_(orgs) if orgs else false()
    if model is AccountIdentity:  # one's own, and those of the accounts one sees
        return or_(AccountIdentity.account_id == me, AccountIdentity.account.has(_accounts(principal, orgs, units)))
    if model is MfaFactor:  # one's own, and those of the accounts one administers (a lost phone)
        return _own_or_administered(MfaFactor, me, grants.admin_orgs)
    if model is AuditEvent:  # "admins and auditors of the organizations concerned"
        return AuditEvent.organization_id.in_(orgs) if orgs else false()
    return false()


def _own_or_administered(model, me, admin_orgs):
    parts = [model.account_id == me]
    if admin_orgs:
        parts.append(model.account.has(Account.organization_id.in_(admin_orgs)))
    return or_(*parts)


def writable_predicate(principal, model):
    """Of the visible rows, those this principal may change or delete (None: all)."""
    grants = grants_of(principal)
    if grants.admin:
        return None
    orgs, units, me = grants.admin_orgs, grants.managed_units, principal.account_id
    if model is Account:
        parts = ([Account.organization_id.in_(orgs)] if orgs else []) + (
            [Account.person.has(Person.organizational_unit_id.in_(subtree(units)))] if units else [])
        return or_(*parts) if parts else false()
    if model is Person:
        return _people(principal, orgs, units, own=False)
    if model in (Unit, Invitation, Group, IdentityProvider, OAuthClient):
        return model.organization_id.in_(orgs) if orgs else false()
    if model is AccountIdentity:  # unlinking: the owner, and whoever administers the account
        parts = [AccountIdentity.account_id == me]
        if orgs:
            parts.append(AccountIdentity.account.has(Account.organization_id.in_(orgs)))
        return or_(*parts)
    if model is AccountRole:
        return AccountRole.account.has(Account.organization_id.in_(orgs)) if orgs else false()
    if model is MfaFactor:
        return _own_or_administered(MfaFactor, me, orgs)
    if model in (AccountSession, ApiKey):
        parts = [model.account_id == me]
        if orgs:
            parts.append(model.account.has(Account.organization_id.in_(orgs)))
        return or_(*parts)
    return false()


# What a person's own account may change of its own person (contract sections 4 and 6); any other
# attribute or relationship is a 403. Deleting it, or more, needs a role that reaches the person.
SELF_SERVICE_PERSON = frozenset({"first_name", "middle_name", "last_name", "picture_url", "gender", "birthday",
                                 "secondary_email", "contact_number", "physical_address"})

# Which grant lets a principal that is not a global admin write which type, and how.
WRITERS = {
    "accounts": {"org_admin": {"create", "update", "delete"}, "ou_manager": {"update"}},
    "people": {"org_admin": {"create", "update", "delete"}, "ou_manager": {"update"}},
    "organizational_units": {"org_admin": {"create", "update", "delete"}},
    "account_roles": {"org_admin": {"create", "update", "delete"}},
    "account_sessions": {"anyone": {"delete"}},
    "api_keys": {"anyone": {"create", "update", "delete"}},
    "organizations": {"org_admin": {"increment"}},
    "invitations": {"org_admin": {"create", "update", "delete", "resend"}},
    "groups": {"org_admin": {"create", "update", "delete"}},
    "identity_providers": {"org_admin": {"create", "update", "delete"}},
    "account_identities": {"anyone": {"delete"}},
    # Enrolling and verifying are the owner's own (resources/mfa_factors.py); deleting is also
    # for those who administer the account.
    "mfa_factors": {"anyone": {"create", "update", "delete", "verify"}},
    "oauth_clients": {"org_admin": {"create", "update", "delete", "rotate_secret"}},
}


class IamPolicy(Policy):
    def visible(self, ctx, resource):
        return false() if ctx.principal is None else visible_predicate(ctx.principal, resource.model)

    def writable(self, ctx, resource):
        predicate = writable_predicate(ctx.principal, resource.model)
        own = getattr(ctx, "iam_self_service_person", None)
        if resource.model is Person and own is not None:  # authorize let the owner update it
            return or_(Person.id == own, predicate)
        return predicate

    def assignable(self, ctx, resource):
        """An id in a body may point at rows of the caller's own reach for writing."""
        grants = grants_of(ctx.principal)
        if grants.admin:
            return None
        if resource.model is Organization:
            return Organization.id.in_(grants.admin_orgs) if grants.admin_orgs else false()
        if resource.model is Unit:
            parts = ([Unit.organization_id.in_(grants.admin_orgs)] if grants.admin_orgs else []) + (
                [Unit.id.in_(subtree(grants.managed_units))] if grants.managed_units else [])
            return or_(*parts) if parts else false()
        if resource.model is Account:
            return or_(Account.id == ctx.principal.account_id, writable_predicate(ctx.principal, Account))
        return writable_predicate(ctx.principal, resource.model)  # one's own person only by a role's reach

    def authorize(self, ctx, resource, action, obj=None):
        principal = ctx.principal
        if principal.read_only and action not in READ_ACTIONS:
            raise forbidden("This API key is read-only.")
        grants = grants_of(principal)
        if grants.admin:
            return
        if resource.type in ADMIN_ONLY_TYPES:
            raise forbidden(f"Only administrators may use {resource.type}.")
        if action in READ_ACTIONS:
            return  # visibility decides which rows exist for the caller
        writers = WRITERS.get(resource.type, {})
        held = {"anyone"} | ({"org_admin"} if grants.admin_orgs else set()) | (
            {"ou_manager"} if grants.managed_units else set())
        if resource.type == "people" and action == "update" and obj is not None \
                and _is_own_person(principal, obj) and not _role_reaches_person(ctx, grants, held, obj):
            # Self-service: the owner's own person, its SELF_SERVICE_PERSON attributes only
            # (check_write); whatever rights the account holds, they never stop this.
            ctx.iam_self_service_person = obj.id
            return
        if not any(action in writers.get(grant, ()) for grant in held):
            raise forbidden(f"Your roles do not allow you to {action} {resource.type}.")
        if resource.type == "account_roles" and obj is not None:
            # Changing or deleting a role needs the same reach as granting it.
            if obj.name == "admin" or not _scopes_within(grants, obj.scopes or {}, obj.scope_organization_id):
                raise forbidden("This role is beyond what you may grant, so you may not change it.")
        if resource.type == "groups" and obj is not None and not all(
                role["name"] != "admin" and _scopes_within(grants, role.get("scopes") or {}, obj.organization_id)
                for role in obj.roles or []):
            # Changing a group (or who is in it) hands out its roles.
            raise forbidden("This group carries roles beyond what you may grant, so you may not change it.")
        if resource.type == "organizations" and obj is not None and obj.id not in grants.admin_orgs:
            raise forbidden("You may only do this for an organization you administer.")
        if resource.type == "accounts" and obj is not None and not _account_within_reach(ctx, grants, obj):
            # Whoever controls an account (its email, its person) controls its roles: changing an
            # account that holds rights one could not grant would be a way to obtain them.
            raise forbidden("This account holds rights beyond yours, so you may not change it.")
        if resource.type == "people" and obj is not None and obj.account is not None \
                and not _account_within_reach(ctx, grants, obj.account):
            # The person is the account's too (its names, secondary email, contact data, picture).
            raise forbidden("This person's account holds rights beyond yours, so you may not change it.")
        if resource.type == "identity_providers" and obj is not None and (
                obj.organization_id not in grants.admin_orgs or not all(
                    role["name"] != "admin" and _scopes_within(grants, role.get("scopes") or {}, obj.organization_id)
                    for role in obj.default_roles or [])):
            # Its accounts get its default roles: changing it needs the reach to grant them.
            raise forbidden("This identity provider hands out roles beyond what you may grant, so you may not "
                            "change it.")
        if resource.type in ("account_sessions", "api_keys", "account_identities", "mfa_factors") and obj is not None \
                and obj.account_id != principal.account_id and not _account_within_reach(ctx, grants, obj.account):
            # Its credentials are the account's too: ending its sessions or changing its keys.
            raise forbidden("This account holds rights beyond yours, so you may not change its "
                            f"{resource.type.replace('_', ' ')}.")

    def check_self_service(self, ctx, resource, state):
        """An update of one's own person that only authorize's self-service allows: its
        SELF_SERVICE_PERSON attributes, or a 403 for each other one. True when it is such an update."""
        if resource.type != "people" or state.creating \
                or getattr(ctx, "iam_self_service_person", None) != state.obj.id:
            return False
        denied = [forbidden(f"You may not change {resource.attribute_field_names.get(attr, attr)} of your own "
                            "person; only its names, picture_url, gender, birthday, secondary_email, "
                            "contact_number and physical_address.", pointer=state.pointer(attr))
                  for attr in state.values if attr not in SELF_SERVICE_PERSON]
        if denied:
            raise _many(denied)
        return True

    def check_write(self, ctx, resource, state):
        grants = grants_of(ctx.principal)
        if grants.admin:
            return
        if self.check_self_service(ctx, resource, state):
            return
        errors = []
        if "organization_id" in state.values and state.changed("organization_id") and not state.creating \
                and not grants.admin_orgs:
            errors.append(forbidden("Only organization admins may move this to another organization.",
                                    pointer=state.pointer("organization_id")))
        if resource.type in ("accounts", "people", "organizational_units", "invitations", "groups",
                             "identity_providers") and state.creating:
            if state.get("organization_id") not in grants.admin_orgs:
                errors.append(forbidden("You may only create this inside an organization you administer.",
                                        pointer=state.pointer("organization_id")))
        if resource.type == "accounts" and not grants.admin_orgs:
            for attr in ("person_id", "organization_id"):
                if state.changed(attr):
                    errors.append(forbidden(f"Only organization admins may change {attr}.",
                                            pointer=state.pointer(attr)))
        if resource.type == "account_roles":
            errors.extend(_role_errors(ctx, grants, state))
        if resource.type in ("invitations", "groups", "identity_providers"):
            # Roles their members (or the accounts a provider creates) get: the reach to grant them.
            roles = "default_roles" if resource.type == "identity_providers" else "roles"
            for index, role in enumerate(state.get(roles) or []):
                if role["name"] == "admin" or not _scopes_within(grants, role.get("scopes") or {},
                                                                 state.get("organization_id")):
                    errors.append(forbidden("You may only hand out roles you could grant yourself.",
                                            pointer=f"{state.pointer(roles)}/{index}"))
        if resource.type == "api_keys" and state.creating and state.get("account_id") != ctx.principal.account_id:
            # A key acts as its account: minting one for someone else needs full reach over them.
            account = ctx.session.get(Account, state.get("account_id"))
            if account is None or account.organization_id not in grants.admin_orgs \
                    or not _account_within_reach(ctx, grants, account):
                errors.append(forbidden("You may create keys only for yourself and for accounts you administer.",
                                        pointer=state.pointer("account_id")))
        if errors:
            raise _many(errors)


def _role_errors(ctx, grants, state):
    """An org_admin may not grant admin, nor scopes it does not hold, nor touch roles that do."""
    errors = []
    if state.get("name") == "admin":
        errors.append(forbidden("Only administrators may grant the admin role.", pointer=state.pointer("name")))
    if not _scopes_within(grants, state.get("scopes") or {}, state.get("scope_organization_id")):
        errors.append(forbidden("You may only grant scopes inside the organizations you administer.",
                                pointer=state.pointer("scopes")))
    return errors


def _is_own_person(principal, person):
    return person.account is not None and person.account.id == principal.account_id


def _role_reaches_person(ctx, grants, held, person):
    """Whether the caller's roles alone let it update this person (as for anyone else's)."""
    if not any("update" in WRITERS["people"].get(grant, ()) for grant in held):
        return False
    predicate = writable_predicate(ctx.principal, Person)
    if predicate is not None and ctx.session.scalar(
            select(Person.id).where(Person.id == person.id, predicate)) is None:
        return False
    return _account_within_reach(ctx, grants, person.account)


def _account_within_reach(ctx, grants, account):
    """Every IAM role of the account (valid now or later, held directly or through a group) is
    one the caller could grant."""
    roles = ctx.session.execute(select(AccountRole.name, AccountRole.scopes, AccountRole.scope_organization_id)
                                .where(AccountRole.account_id == account.id,
                                       AccountRole.name.in_(PRIVILEGED_ROLES))).all()  # columns, not objects
    group_roles = ctx.session.execute(select(Group.organization_id, Group.roles)
                                      .join(group_members, group_members.c.group_id == Group.id)
                                      .where(group_members.c.account_id == account.id)).all()
    roles = [tuple(role) for role in roles] + [
        (r["name"], r.get("scopes"), group_org) for group_org, listed in group_roles for r in listed
        if r["name"] in PRIVILEGED_ROLES]
    if not roles:
        return True
    if account.organization_id not in grants.admin_orgs:
        return False  # an ou_manager's reach: accounts without IAM rights only
    return all(name != "admin" and _scopes_within(grants, scopes or {}, ou_org) for name, scopes, ou_org in roles)


def _scopes_within(grants, scopes, ou_org):
    """Scopes an organization admin could grant: organizations it administers, units of one
    (`ou_org`: the organization the role's units are confined to), never `{}` or projects."""
    if not scopes:  # global: wider than any organization admin's reach
        return False
    for kind, ids in scopes.items():
        if kind == "organization":
            if not set(ids) <= grants.admin_orgs:
                return False
        elif kind == "ou":
            if ou_org is None or ou_org not in grants.admin_orgs:
                return False
        else:
            return False  # project scopes are not held by organization admins
    return True


def _many(errors):
    return JsonApiErrors(errors) if len(errors) > 1 else errors[0]
