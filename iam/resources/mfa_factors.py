"""mfa_factors: an account's second factors (contract section 9).

The account itself lists, creates, verifies and deletes its factors; admins and org_admins
list and delete those of the accounts they administer (a lost phone), audited. Secrets are
shown once, in the create's `meta`, and never again:

- `totp`: `meta.secret` and `meta.otpauth_uri`; the seed is sealed. Pending until `POST
  /mfa_factors/:id/verify {"code"}` proves the authenticator app has it.
- `recovery_codes`: `meta.codes`, ten single-use codes; active at once; a new set replaces the
  old one.
- `webauthn`: `meta.options` (PublicKeyCredentialCreationOptions); pending until `/verify
  {"credential"}` with the browser's attestation.

Verifying a factor proves it in the caller's session (`amr`, `mfa_at`), and lifts a session's
enrolment-only limit. Deleting a factor of an account that has a second factor needs a recent
one (step-up).
"""
from flask import current_app, request
from marshmallow import Schema, fields as ma_fields, validate
from sqlalchemy import delete, select

from .. import audit
from ..auth import sessions
from ..auth.stepup import require_step_up
from ..auth.views import parse_auth_body
from ..jsonapi import JsonApiError, JsonApiErrors, Resource, query
from ..jsonapi import filters as ft
from ..jsonapi.errors import conflict, invalid_field
from ..jsonapi.schema import Int, JsonApiSchema, Rel, Str, Timestamp
from ..mfa import codes, passkeys
from ..models import FACTOR_KINDS, FACTOR_STATUSES, Account, AccountSession, MfaFactor, MfaRecoveryCode

DEFAULT_NAMES = {"totp": "Authenticator app", "webauthn": "Passkey", "recovery_codes": "Recovery codes"}


class MfaFactorSchema(JsonApiSchema):
    class Meta:
        type_ = "mfa_factors"

    account_id = Int()
    kind = Str(required=True, validate=validate.OneOf(FACTOR_KINDS))
    name = Str(min_length=1, max_length=200)
    status = Str(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)
    last_used_at = Timestamp(dump_only=True)

    account = Rel("accounts", fk="account_id", writable=False)


class VerifySchema(Schema):
    code = ma_fields.String(validate=validate.Length(min=1, max=64))
    credential = ma_fields.Dict()


class MfaFactors(Resource):
    type = "mfa_factors"
    model = MfaFactor
    schema = MfaFactorSchema
    actions = ("list", "show", "create", "update", "delete")
    attribute_types = {"kind": ft.Enum(FACTOR_KINDS), "status": ft.Enum(FACTOR_STATUSES)}

    def validate(self, state):
        principal = state.ctx.principal
        if state.creating:
            state.values.setdefault("account_id", principal.account_id)
            if state.values["account_id"] != principal.account_id:
                # Enrolling is the owner's: the secret would be shown to whoever creates it.
                raise JsonApiError(403, "forbidden", "Forbidden", "Only the account itself may enrol its factors.",
                                   pointer=state.pointer("account_id"))
            state.values.setdefault("name", DEFAULT_NAMES[state.values["kind"]])
            return
        fixed = [state.error(attr, f"{attr} cannot change; only name can.", code="read_only")
                 for attr in state.values if attr != "name" and state.changed(attr)]
        if fixed:
            raise JsonApiErrors(fixed)

    def create(self, state):
        kind, now = state.values["kind"], state.ctx.now
        account = state.ctx.session.get(Account, state.values["account_id"])
        if kind == "recovery_codes":  # a new set replaces the old one
            state.ctx.session.execute(delete(MfaFactor).where(
                MfaFactor.account_id == account.id, MfaFactor.kind == "recovery_codes")
                .execution_options(synchronize_session=False))
        obj = super().create(state)
        if kind == "totp":
            secret = codes.new_totp_secret()
            obj.secret_sealed, obj.status = codes.seal_secret(secret), "pending"
            issuer = current_app.config["IAM_ISSUER"].split("://", 1)[-1]
            state.meta.update(secret=secret, otpauth_uri=codes.otpauth_uri(secret, account.email, issuer))
        elif kind == "recovery_codes":
            shown, digests = codes.new_recovery_codes()
            obj.status = "active"
            state.ctx.session.flush()
            state.ctx.session.add_all(MfaRecoveryCode(factor_id=obj.id, code_digest=d) for d in digests)
            state.meta["codes"] = shown
        else:
            obj.status = "pending"
            existing = state.ctx.session.scalars(select(MfaFactor).where(
                MfaFactor.account_id == account.id, MfaFactor.kind == "webauthn", MfaFactor.status == "active")).all()
            state.meta["options"] = passkeys.registration_options(obj, account, existing)
            obj.challenge_expires_at = passkeys.challenge_expiry(now)
        return obj

    def delete(self, ctx, obj):
        require_step_up(ctx.principal, ctx.now)
        super().delete(ctx, obj)

    def register_routes(self, api):
        def mfa_factors_verify(id):
            """POST /mfa_factors/:id/verify: activate a pending factor of one's own."""
            ctx = api.begin(self, "verify", authorize=False)
            spec = query.parse(request.args, self, api, collection=False)
            args = parse_auth_body(VerifySchema)
            factor = api.load_for_change(ctx, self, id, "verify")
            if factor.account_id != ctx.principal.account_id:
                raise JsonApiError(403, "forbidden", "Forbidden", "Only the account itself may verify its factors.")
            if factor.status != "pending" or factor.kind == "recovery_codes":
                raise conflict("This factor is active already.", code="not_pending")
            wrapped = getattr(request, "_iam_wrapped", False)
            if factor.kind == "totp":
                if not args.get("code"):
                    raise JsonApiErrors([invalid_field("/data/attributes/code" if wrapped else "/code",
                                                       "code is required.", code="required")])
                step = codes.totp_step(factor, args["code"], ctx.now.timestamp())
                if step is None or not codes.claim_totp_step(factor.id, step, ctx.now):
                    raise self._refused(ctx, factor, "the code is wrong")
                ctx.session.refresh(factor)  # the claim wrote its row (and version)
                amr = "otp"
            else:
                if not isinstance(args.get("credential"), dict):
                    raise JsonApiErrors([invalid_field("/data/attributes/credential" if wrapped else "/credential",
                                                       "credential (the browser's attestation) is required.",
                                                       code="required")])
                try:
                    passkeys.register(factor, args["credential"], ctx.now)
                except passkeys.Refused as refused:
                    raise self._refused(ctx, factor, str(refused)) from None
                amr = "hwk"
            before = {"status": "pending"}
            factor.status = "active"
            api.flush(ctx)
            api.on_change(ctx, self, "verify", factor, before, {"status": "active"})
            # Proven now, in this session: it counts as a second factor here (and ends an
            # enrolment-only limit).
            session = ctx.session.get(AccountSession, ctx.principal.session_id)
            sessions.prove_second_factor(session, ctx.now, amr, enrollment_only=False)
            response = api.render_stored(self, ctx, id, spec)
            api.commit(ctx)
            return response

        api.blueprint.add_url_rule("/mfa_factors/<int:id>/verify", "mfa_factors_verify", mfa_factors_verify,
                                   methods=["POST"])

    def _refused(self, ctx, factor, reason):
        ctx.session.rollback()
        audit.record("mfa_failed", actor_id=ctx.principal.account_id, resource_type=self.type, resource_id=factor.id,
                     organization_id=ctx.principal.account.organization_id, changes={"reason": reason})
        ctx.session.commit()
        return JsonApiError(401, "invalid_code", "Unauthenticated", "The code or passkey is not accepted.")
