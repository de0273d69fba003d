"""invitations: someone is invited, by email, into an organization with roles.

The token is 256 random bits mailed once and stored as its digest. Accepting claims the
invitation with one conditional UPDATE (pending, unexpired, token still the current one),
so however many times a link is clicked at once, one account is created.
"""
import secrets
from datetime import timedelta

from flask import current_app, request
from marshmallow import Schema, fields as ma_fields, validate
from sqlalchemy import func, select, update

from .. import audit, mail
from ..auth import passwords, sessions
from ..extensions import db
from ..jsonapi import JsonApiError, JsonApiErrors, Resource, query
from ..jsonapi import filters as ft
from ..jsonapi.errors import conflict, invalid_field
from ..jsonapi.media import check_accept
from ..jsonapi.schema import Int, JsonApiSchema, Rel, Str, Timestamp
from ..jsonapi.views import snapshot
from ..models import INVITATION_STATUSES, Account, AccountRole, IdentityProvider, Invitation, Person, utcnow
from .account_roles import check_scope_rows, validate_scopes
from .accounts import Email
from .common import digest

# What PATCH /invitations/:id may change (of a pending invitation).
UPDATABLE = ("roles", "identity_provider_id")
ROLE_NAME = validate.Regexp(r"^[A-Za-z0-9_.:-]+$", error="May contain only letters, digits and _ . : -")


class InvitedRole(Schema):
    name = ma_fields.String(required=True, validate=[validate.Length(min=1, max=128), ROLE_NAME])
    scopes = ma_fields.Dict(load_default=dict, validate=validate_scopes)


def check_role_rows(state, registry, attribute="roles"):
    """The roles listed on a group, an invitation or an identity provider (`attribute`: where
    they are) name rows of its own organization only."""
    errors = []
    for index, role in enumerate(state.get(attribute) or []):
        found, _ = check_scope_rows(state.ctx, registry, role.get("scopes") or {},
                                    f"{state.pointer(attribute)}/{index}/scopes", within=state.get("organization_id"))
        errors.extend(found)
    if errors:
        raise JsonApiErrors(errors)


def granted_role(role, organization_id, **values):
    """An account_roles row for a role listed on an invitation of `organization_id`."""
    scopes = role.get("scopes") or {}
    return AccountRole(name=role["name"], scopes=scopes,
                       scope_organization_id=organization_id if scopes.get("ou") else None, **values)


class InvitationSchema(JsonApiSchema):
    class Meta:
        type_ = "invitations"

    email = Email(required=True)
    organization_id = Int(required=True)
    roles = ma_fields.List(ma_fields.Nested(InvitedRole), validate=validate.Length(max=50))
    status = Str(dump_only=True)
    invited_by_id = Int(dump_only=True)
    account_id = Int(dump_only=True)
    sent_at = Timestamp(dump_only=True)
    expires_at = Timestamp(dump_only=True)
    accepted_at = Timestamp(dump_only=True)
    revoked_at = Timestamp(dump_only=True)
    identity_provider_id = Int(allow_none=True)
    created_at = Timestamp(dump_only=True)

    organization = Rel("organizations", fk="organization_id", writable=False)


class AcceptSchema(Schema):
    token = ma_fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = ma_fields.String(required=True, validate=validate.Length(max=4096))
    first_name = ma_fields.String(load_default=None, validate=validate.Length(max=255), allow_none=True)
    last_name = ma_fields.String(load_default=None, validate=validate.Length(max=255), allow_none=True)


def _mail(invitation, raw):
    template = current_app.config.get("IAM_INVITATION_URL")
    action = (f"Open this link to accept it:\n\n{template.replace('{token}', raw)}" if template else
              f"Accept it with POST /api/v3/iam/invitations/accept and this token:\n\n{raw}")
    body = (f"You are invited to {invitation.organization.name}.\n\n{action}\n\n"
            f"The invitation works once and expires at {invitation.expires_at:%Y-%m-%d %H:%M} UTC.")
    to = invitation.email  # read now: the mail goes after the commit, which expires the row
    return lambda: mail.send(to, "You are invited", body)


def _new_token(invitation, now):
    """A fresh token (the previous one dies) and a renewed validity; returns the raw token."""
    raw = secrets.token_urlsafe(32)
    invitation.token_digest = digest(raw)
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(seconds=current_app.config["IAM_INVITATION_TTL"])
    return raw


def _account_exists(email):
    return db.session.scalar(select(Account.id).where(func.lower(Account.email) == email.lower())) is not None


def accept(invitation, now, person_values, token_digest=None, **account_values):
    """Claim a pending invitation (one conditional UPDATE: of all the parallel acceptances of one
    invitation, one wins) and create its person and account with the invited roles. None when
    it is not pending any more (or its token is no longer `token_digest`); a 409 when its email
    has an account meanwhile. Nothing is committed."""
    claim = [Invitation.id == invitation.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None),
             Invitation.expires_at > now]
    if token_digest is not None:
        claim.append(Invitation.token_digest == token_digest)
    claimed = db.session.execute(
        update(Invitation).where(*claim)
        .values(accepted_at=now, token_digest=None, version=Invitation.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return None
    db.session.refresh(invitation)  # the roles as claimed: a PATCH may have committed meanwhile
    if _account_exists(invitation.email):
        db.session.rollback()
        raise conflict(f"{invitation.email} already has an account; log in instead.", code="not_unique")
    person = Person(organization_id=invitation.organization_id, facets=[], **person_values)
    account = Account(email=invitation.email, organization_id=invitation.organization_id, person=person,
                      account_type="personal_account", preferences={}, email_verified_at=now, **account_values)
    account.roles = [granted_role(r, invitation.organization_id, info={"invitation": invitation.id})
                     for r in invitation.roles]
    db.session.add(account)
    db.session.flush()
    db.session.execute(update(Invitation).where(Invitation.id == invitation.id)
                       .values(account_id=account.id).execution_options(synchronize_session=False))
    return account


class Invitations(Resource):
    type = "invitations"
    model = Invitation
    schema = InvitationSchema
    actions = ("list", "show", "create", "update", "delete")
    attribute_types = {"status": ft.Enum(INVITATION_STATUSES)}
    sort_expressions = {"status": Invitation.status}
    audit_actions = {"delete": "revoke"}

    def validate(self, state):
        if not state.creating:
            self._validate_update(state)
            return
        email = state.values["email"]
        if _account_exists(email):
            raise conflict(f"{email} already has an account.", code="not_unique", pointer=state.pointer("email"))
        pending = state.ctx.session.scalar(select(Invitation.id).where(
            func.lower(Invitation.email) == email.lower(),
            Invitation.organization_id == state.values["organization_id"], Invitation.status == "pending"))
        if pending is not None:
            raise conflict(f"{email} already has a pending invitation here (id {pending}); resend it instead.",
                           code="not_unique", pointer=state.pointer("email"))
        state.values.setdefault("roles", [])
        if state.changed("roles"):
            check_role_rows(state, self.registry)
        self._check_provider(state)

    def _check_provider(self, state):
        """The provider an invitation is accepted through: one of the invitation's organization
        (any other id, existing or not, gets the same 422), holding the invited email's domain."""
        provider_id = state.get("identity_provider_id")
        if provider_id is None or not state.changed("identity_provider_id"):
            return
        provider = state.ctx.session.get(IdentityProvider, provider_id) if 0 < provider_id < 2 ** 31 else None
        if provider is None or provider.organization_id != state.get("organization_id"):
            raise JsonApiErrors([state.error("identity_provider_id",
                                             "No identity provider of the invitation's organization has this id.",
                                             code="not_found")])
        _, _, domain = state.get("email").rpartition("@")
        if domain.lower() not in provider.email_domains:
            raise JsonApiErrors([state.error("identity_provider_id",
                                             f"The invited email's domain is not one of {provider.name}'s email "
                                             "domains: the invitee could never sign in through it.",
                                             code="invalid_value")])

    def _validate_update(self, state):
        """PATCH changes the roles of a pending invitation, and nothing else of it."""
        if state.obj.status != "pending":
            raise conflict(f"The invitation is {state.obj.status}; only a pending one can be changed.",
                           code="not_pending")
        fixed = [state.error(attr, f"{self.attribute_field_names.get(attr, attr)} cannot be changed; revoke "
                                   "the invitation and invite again.", code="read_only")
                 for attr in state.values if attr not in UPDATABLE]
        if fixed:
            raise JsonApiErrors(fixed)
        if state.changed("roles"):
            check_role_rows(state, self.registry)
        self._check_provider(state)

    def create(self, state):
        obj = super().create(state)
        obj.invited_by_id = state.ctx.principal.account_id
        raw = _new_token(obj, state.ctx.now)
        state.ctx.session.flush()
        state.after_commit.append(_mail(obj, raw))
        return obj

    def delete(self, ctx, obj):
        """Revoking keeps the row (status `revoked`); only a pending invitation can be revoked."""
        if obj.status != "pending":
            raise conflict(f"The invitation is {obj.status}; only a pending one can be revoked.", code="not_pending")
        obj.revoked_at = ctx.now
        obj.token_digest = None

    def register_routes(self, api):
        from ..auth.views import committed_session_document, parse_auth_body

        def invitations_resend(id):
            ctx = api.begin(self, "resend", authorize=False)
            spec = query.parse(request.args, self, api, collection=False)
            invitation = api.load_for_change(ctx, self, id, "resend")
            if invitation.accepted_at is not None or invitation.revoked_at is not None:
                raise conflict(f"The invitation is {invitation.status}; only a pending or expired one can be resent.",
                               code="not_pending")
            before = snapshot(self, invitation, ["expires_at", "sent_at"])
            raw = _new_token(invitation, ctx.now)
            after = snapshot(self, invitation, ["expires_at", "sent_at"])
            api.on_change(ctx, self, "resend", invitation, before, after)
            send = _mail(invitation, raw)
            response = api.render_stored(self, ctx, id, spec)  # before the commit: nothing may fail after it
            api.commit(ctx)
            api.after_commit([send])
            return response

        def invitations_accept():
            """Public: turn a pending invitation into a person and an account, and log them in."""
            check_accept()
            args = parse_auth_body(AcceptSchema)
            problem = passwords.policy_problem(args["password"])
            if problem:
                pointer = "/data/attributes/password" if getattr(request, "_iam_wrapped", False) else "/password"
                raise JsonApiErrors([invalid_field(pointer, problem, code="weak_password")])
            now, token_digest = utcnow(), digest(args["token"])
            invitation = db.session.scalars(select(Invitation).where(Invitation.token_digest == token_digest)
                                            ).one_or_none()
            invalid = JsonApiError(400, "invalid_token", "Bad request",
                                   "The invitation is invalid, used, revoked or expired.", pointer="/token")
            if invitation is None:
                raise invalid
            if invitation.identity_provider_id is not None:
                raise conflict("This invitation is accepted by signing in through its identity provider: open "
                               "/api/v3/iam/auth/sso/start?invitation_token=... in a browser, with this token.",
                               code="sso_required", pointer="/token")
            password_hash = passwords.hash_password(args["password"])
            account = accept(invitation, now, {"first_name": args["first_name"], "last_name": args["last_name"]},
                             token_digest=token_digest, password_hash=password_hash, auth_type="password")
            if account is None:
                raise invalid
            session = sessions.open_session(account, now)
            refresh_token = sessions.new_refresh_token(session)
            audit.record("invitation_accepted", actor_id=account.id, resource_type=self.type,
                         resource_id=invitation.id, organization_id=invitation.organization_id)
            return committed_session_document(api, session, now, refresh_token)

        api.blueprint.add_url_rule("/invitations/<int:id>/resend", "invitations_resend", invitations_resend,
                                   methods=["POST"])
        api.blueprint.add_url_rule("/invitations/accept", "invitations_accept", invitations_accept, methods=["POST"])

