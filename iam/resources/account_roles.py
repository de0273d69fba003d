"""account_roles: a named role granted to an account, with scopes and a validity window."""
from marshmallow import ValidationError, validate
from sqlalchemy import or_, select

from ..jsonapi import Filter, JsonApiErrors, Resource
from ..jsonapi import filters as ft
from ..jsonapi import jsonsql
from ..jsonapi.errors import invalid_field
from ..jsonapi.schema import Int, JsonApiSchema, JsonObject, Rel, Str, Timestamp
from ..models import AccountRole, Organization, OrganizationalUnit

SCOPE_KINDS = ("organization", "ou", "project")


def validate_scopes(value):
    """`{}` (global) or `{"organization"|"ou"|"project": [positive ids]}`."""
    for kind, ids in value.items():
        if kind not in SCOPE_KINDS:
            raise ValidationError(f"Unknown scope {kind!r}; scopes are " + ", ".join(SCOPE_KINDS) + ".")
        if not isinstance(ids, list) or not ids or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2 ** 31 for i in ids):
            raise ValidationError(f"Scope {kind!r} must be a non-empty list of positive integer ids.")


def check_scope_rows(ctx, registry, scopes, pointer, within=None):
    """The rows a role's scopes name, checked when it is granted: `(errors, organization of its ou units)`.

    Every organization and unit id must name a row the granter can see (an id it may not see
    is "no such row", as anywhere in a body), and the units of one role must belong to one
    organization: the one the role is granted in, which the policy confines the scope to at
    decision time. `within`: the organization a group's or an invitation's roles live in;
    their scopes may not reach outside it. Project ids are the applications' data, not rows
    of the IAM: they are kept as given (only global admins may grant them, iam/auth/policy.py).
    """
    errors, scope_org = [], None
    org_ids = sorted(set(scopes.get("organization") or []))
    if org_ids:
        organizations = registry.resource("organizations")
        found = set(ctx.session.scalars(organizations.base_select(ctx, select(Organization.id))
                                        .where(Organization.id.in_(org_ids))))
        missing = [i for i in org_ids if i not in found]
        if missing:
            errors.append(invalid_field(f"{pointer}/organization", "There is no organization with id "
                                        + ", ".join(map(str, missing)) + ".", code="not_found"))
        elif within is not None and org_ids != [within]:
            errors.append(invalid_field(f"{pointer}/organization",
                                        f"These roles may only name their own organization, {within}."))
    unit_ids = sorted(set(scopes.get("ou") or []))
    if unit_ids:
        units = registry.resource("organizational_units")
        rows = dict(ctx.session.execute(units.base_select(
            ctx, select(OrganizationalUnit.id, OrganizationalUnit.organization_id))
            .where(OrganizationalUnit.id.in_(unit_ids))).all())
        missing = [i for i in unit_ids if i not in rows]
        orgs = set(rows.values())
        if missing:
            errors.append(invalid_field(f"{pointer}/ou", "There is no organizational unit with id "
                                        + ", ".join(map(str, missing)) + ".", code="not_found"))
        elif len(orgs) > 1:
            errors.append(invalid_field(f"{pointer}/ou", "The units of one role must belong to one organization; "
                                        "grant a role per organization."))
        elif within is not None and orgs != {within}:
            errors.append(invalid_field(f"{pointer}/ou",
                                        f"These roles may only name units of their own organization, {within}."))
        else:
            scope_org = orgs.pop()
    return errors, scope_org


class AccountRoleSchema(JsonApiSchema):
    class Meta:
        type_ = "account_roles"

    name = Str(required=True, min_length=1, max_length=128, validate=validate.Regexp(
        r"^[A-Za-z0-9_.:-]+$", error="May contain only letters, digits and _ . : -"))
    account_id = Int(required=True)
    scopes = JsonObject(validate=validate_scopes)
    info = JsonObject()
    not_before = Timestamp(allow_none=True)
    expires_at = Timestamp(allow_none=True)
    scope_organization_id = Int(dump_only=True, allow_none=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    account = Rel("accounts", fk="account_id")


class _ScopeValue(ft.FieldType):
    """`ou` (any ou scope) or `ou:12` (an ou scope holding 12)."""

    name = "scope"
    operators = ("eq", "in")
    json_schema = {"type": "string", "pattern": "^(organization|ou|project)(:[0-9]{1,9})?$"}

    def parse(self, raw):
        kind, _, id_ = raw.strip().partition(":")
        if kind not in SCOPE_KINDS:
            raise ValueError("expected organization, ou or project, optionally followed by :id")
        if not id_:
            return (kind, None)
        return (kind, ft.Integer().parse(id_))


def _with_scopes(op, values, ctx):
    clauses = []
    for kind, id_ in values:
        if id_ is None:
            clauses.append(jsonsql.has_key(AccountRole.scopes, kind, ctx.dialect))
        else:
            clauses.append(jsonsql.contains(AccountRole.scopes, {kind: [id_]}, ctx.dialect))
    return or_(*clauses)


def _with_projects(op, values, ctx):
    return jsonsql.contains_any(AccountRole.scopes, "project", values, ctx.dialect)


class AccountRoles(Resource):
    type = "account_roles"
    aliases = ("iam/account/roles", "iam/account_roles")
    model = AccountRole
    schema = AccountRoleSchema
    extra_filters = (
        Filter("with_scopes", _ScopeValue(), build=_with_scopes,
               doc="`ou`: roles with any ou scope; `ou:12`: roles whose ou scope holds 12 "
                   "(organization and project likewise); a list matches any."),
        Filter("with_projects", ft.Integer(), build=_with_projects, operators=("eq", "in"),
               doc="Roles whose project scope holds any of these ids."),
    )

    def validate(self, state):
        not_before, expires_at = state.get("not_before"), state.get("expires_at")
        if not_before is not None and expires_at is not None and not_before >= expires_at:
            raise JsonApiErrors([state.error("expires_at", "expires_at must be later than not_before.")])
        if not state.creating and state.changed("account_id"):
            raise JsonApiErrors([state.error("account_id", "A role cannot move to another account; "
                                             "delete it and grant a new one.", code="read_only")])
        if state.creating or state.changed("scopes"):
            errors, scope_org = check_scope_rows(state.ctx, self.registry, state.get("scopes") or {},
                                                 state.pointer("scopes"))
            if errors:
                raise JsonApiErrors(errors)
            state.values["scope_organization_id"] = scope_org

