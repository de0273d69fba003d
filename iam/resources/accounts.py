"""accounts: who can sign in, with their roles, person and organization."""
from email_validator import EmailNotValidError, validate_email
from flask import request
from marshmallow import ValidationError, validate
from sqlalchemy import and_, func, or_, select

from .. import audit, mail
from ..auth import passwords, sessions
from ..jsonapi import Filter, JsonApiError, JsonApiErrors, Resource, query
from ..jsonapi import filters as ft
from ..jsonapi.schema import Bool, Int, JsonApiSchema, JsonObject, Rel, Str, Timestamp
from ..jsonapi import jsonsql
from ..models import ACCOUNT_TYPES, AUTH_TYPES, Account, AccountRole, Group, OrganizationalUnit, Person
from .common import digest, search_filter, through


def normalise_email(value):
    """A deliverable-looking address in its normal form (domain lower-cased, IDNA handled)."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(f"Not a valid email address: {exc}.") from None


class Email(Str):
    def __init__(self, **kwargs):
        super().__init__(max_length=320, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_email(super()._deserialize(value, attr, data, **kwargs))


def _password_policy(value):
    problem = passwords.policy_problem(value)
    if problem:
        raise ValidationError(problem)


class AccountSchema(JsonApiSchema):
    class Meta:
        type_ = "accounts"

    email = Email(required=True)
    account_type = Str(validate=validate.OneOf(ACCOUNT_TYPES))
    auth_type = Str(validate=validate.OneOf(AUTH_TYPES))
    enabled = Bool()
    expires_at = Timestamp(allow_none=True)
    person_id = Int(allow_none=True)
    organization_id = Int(allow_none=True)
    preferences = JsonObject()
    consent_given_at = Timestamp(dump_only=True)
    last_login_at = Timestamp(dump_only=True)
    sso_linked = Bool(dump_only=True)
    mfa_enabled = Bool(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)
    password = Str(load_only=True, validate=lambda value: _password_policy(value))

    roles = Rel("account_roles", many=True, writable=True)
    person = Rel("people", fk="person_id")
    organization = Rel("organizations", fk="organization_id")
    sessions = Rel("account_sessions", many=True, includable=False)
    api_keys = Rel("api_keys", many=True, includable=False)
    groups = Rel("groups", many=True)


def _ou_accounts(op, values, ctx):
    """Accounts whose person sits in one of these units or anywhere below them.

    A unit's `ancestry` (`/3/17/`) prefixes the ancestry of every unit below it.
    """
    unit = OrganizationalUnit
    prefixes = [select(unit.ancestry).where(unit.id == v).scalar_subquery() for v in values]
    units = select(unit.id).where(or_(*(unit.ancestry.startswith(p) for p in prefixes)))
    return Account.person.has(Person.organizational_unit_id.in_(units))


def _role_name(op, values, ctx):
    """Accounts holding a role of one of these names that is valid now, directly or through a group."""
    names = AccountRole.name == values[0] if len(values) == 1 else AccountRole.name.in_(values)
    direct = Account.roles.any(and_(names, AccountRole.valid_at(ctx.now)))
    return or_(direct, Account.groups.any(jsonsql.array_has_object_with(Group.roles, "name", values, ctx.dialect)))


def _password_reset_token(op, values, ctx):
    """Only administrators may look accounts up by a raw reset token."""
    if not ctx.principal.is_admin:
        raise JsonApiError(403, "forbidden", "Forbidden", "Only administrators may filter by password_reset_token.",
                           parameter="filter[password_reset_token]")
    return Account.password_reset_token_digest == digest(values[0])


def _indexed(exc, index):
    """Errors of list item `index`: /data/attributes/x becomes /data/INDEX/attributes/x."""
    errors = exc.errors if isinstance(exc, JsonApiErrors) else [exc]
    for error in errors:
        pointer = error.source.get("pointer")
        if pointer and pointer.startswith("/data"):
            error.source["pointer"] = f"/data/{index}" + pointer[len("/data"):]
    return JsonApiErrors(errors)


class Accounts(Resource):
    type = "accounts"
    aliases = ("iam/accounts",)
    model = Account
    schema = AccountSchema
    attribute_types = {"email": ft.String(case_insensitive=True), "sso_linked": ft.Boolean(),
                       "mfa_enabled": ft.Boolean()}
    unique = {"email": lambda value: func.lower(Account.email) == value.lower()}
    # An account made for a person belongs to that person's organization unless told otherwise
    # (derived before the ids in the body are checked, so the organization is checked too).
    implied_by = {"organization_id": ("person", "organization_id")}
    extra_filters = (
        Filter("ou_accounts", ft.Integer(), build=_ou_accounts, operators=("eq", "in"),
               doc="Accounts whose person sits in this organizational unit or below it."),
        Filter("role_name", ft.String(), build=_role_name, operators=("eq", "in"),
               doc="Accounts holding a role of this name that is valid now."),
        Filter("password_reset_token", ft.String(), build=_password_reset_token, operators=("eq",),
               doc="Matches a raw password-reset token against its stored digest (admins only)."),
        Filter("password_reset_token_expires_at", ft.DateTime(), column=Account.password_reset_token_expires_at),
        search_filter(
            [Account.email,
             lambda w: through(Account.person)(or_(Person.first_name.icontains(w, autoescape=True),
                                                   Person.middle_name.icontains(w, autoescape=True),
                                                   Person.last_name.icontains(w, autoescape=True)))],
            doc="Free text over the email and the person's names; every word must match."),
    )

    def validate(self, state):
        errors = []
        person_id = state.get("person_id")
        if person_id is not None and (state.changed("person_id") or state.changed("organization_id")):
            person_org = state.ctx.session.scalar(select(Person.organization_id).where(Person.id == person_id))
            if person_org != state.get("organization_id"):
                errors.append(state.error("person_id", "The person belongs to another organization than the account."))
            taken = state.ctx.session.scalar(
                select(Account.id).where(Account.person_id == person_id,
                                         Account.id != (state.obj.id if state.obj else -1)))
            if taken is not None:
                errors.append(state.error("person_id", "That person already has an account.", code="not_unique"))
        if not state.creating and "password" in state.values:
            errors.append(state.error("password", "password can only be set when creating an account; "
                                      "use /account/passwords/change.", code="read_only"))
        if errors:
            raise JsonApiErrors(errors)

    def update(self, state):
        obj = super().update(state)
        if not obj.is_active(state.ctx.now):
            # Disabled or expired: its sessions end now, so re-enabling it later does not
            # bring old tokens back to life.
            sessions.end_all(obj.id, state.ctx.now)
        return obj

    def create(self, state):
        password = state.values.pop("password", None)
        obj = super().create(state)
        if password is not None:
            obj.password_hash = passwords.hash_password(password)
        return obj

    def write_relationship(self, ctx, account, rel, method, body):
        """PATCH /accounts/:id/relationships/roles: the account's complete list of roles.

        Items are identifiers of roles the account keeps (`{"type", "id"}`) or new roles
        (`{"type": "account_roles", "attributes": {...}}`); roles not listed are removed. POST
        adds the new roles listed, DELETE removes the identified ones. Every grant and removal
        passes the same checks as through /account_roles, in one transaction.
        Returns (role names before, role names after) for the change record.
        """
        roles = self.registry.resource("account_roles")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise JsonApiError(400, "invalid_document", "Bad request", "data must be a list.", pointer="/data")
        current = {role.id: role for role in account.roles}
        before = sorted(role.name for role in current.values())
        keep, new = set(), []
        for index, item in enumerate(body["data"]):
            if not isinstance(item, dict) or self.registry.canonical_type(item.get("type")) != "account_roles":
                raise JsonApiError(409 if isinstance(item, dict) else 400,
                                   "type_mismatch" if isinstance(item, dict) else "invalid_document",
                                   "Conflict" if isinstance(item, dict) else "Bad request",
                                   "Each item must be an account_roles identifier or resource object.",
                                   pointer=f"/data/{index}")
            if "id" in item:
                role_id = item["id"]
                if not isinstance(role_id, str) or not role_id.isdigit() or int(role_id) not in current:
                    raise JsonApiError(422, "not_found", "Invalid attribute",
                                       f"This account has no role {role_id!r}.", pointer=f"/data/{index}/id")
                keep.add(int(role_id))
            elif method == "DELETE":
                raise JsonApiError(400, "invalid_document", "Bad request",
                                   "DELETE takes identifiers of roles to remove.", pointer=f"/data/{index}")
            else:
                new.append((index, item))
        if method in ("PATCH", "DELETE"):
            remove = set(current) - keep if method == "PATCH" else keep
            for role_id in sorted(remove):
                role = self.registry.load_for_change(ctx, roles, role_id, "delete")
                ctx.session.delete(role)
        if method in ("PATCH", "POST"):
            for index, item in new:
                attributes = dict(item.get("attributes") or {})
                attributes["account_id"] = account.id
                try:
                    state = roles.load({"data": {"type": "account_roles", "attributes": attributes}}, ctx)
                    roles.prepare(state)
                except (JsonApiError, JsonApiErrors) as exc:
                    raise _indexed(exc, index) from None
                roles.create(state)
        ctx.session.flush()
        ctx.session.expire(account, ["roles"])
        return before, sorted(role.name for role in account.roles)

    def register_routes(self, api):
        def accounts_password_reset(id):
            """Mail the owner a reset link (the admin never sees or chooses the password)."""
            from ..auth.password_views import issue_reset_token  # the one way reset tokens are made

            ctx = api.begin(self, "update", authorize=False)
            query.refuse_parameters(request.args)
            account = api.load_for_change(ctx, self, id, "update")
            if not account.is_active(ctx.now) or account.auth_type != "password":
                raise JsonApiError(409, "account_inactive", "Conflict",
                                   "Only an enabled, unexpired password account can reset its password.")
            _, body = issue_reset_token(account, ctx.now)
            audit.record("password_reset_requested", actor_id=ctx.principal.account_id, resource_type=self.type,
                         resource_id=account.id, organization_id=account.organization_id)
            to = account.email  # read before the commit: nothing may fail after it
            api.commit(ctx)
            api.after_commit([lambda: mail.send(to, "Reset your password", body)])
            return "", 204

        api.blueprint.add_url_rule("/accounts/<int:id>/password_reset", "accounts_password_reset",
                                   accounts_password_reset, methods=["POST"])
