"""api_keys: long-lived credentials for scripts; the raw key is shown once, only its digest is kept."""
from flask import request
from marshmallow import ValidationError

from ..auth.policy import grants_of
from ..auth.stepup import require_step_up
from ..auth.tokens import new_api_key
from ..extensions import db
from ..jsonapi import JsonApiError, JsonApiErrors, Resource, query
from ..jsonapi import filters as ft
from ..jsonapi.views import snapshot
from ..jsonapi.schema import Int, JsonApiSchema, JsonObject, Rel, Str, Timestamp
from ..models import ApiKey
from .common import digest

STATUSES = ("active", "revoked", "expired")


def validate_key_scopes(value):
    """`{}` (everything the account may do), `{"read_only": true}`, or `{"scim": true}` (a key
    for an identity provider's provisioning at /scim/v2, and nothing else: contract section 11)."""
    if value not in ({}, {"read_only": True}, {"read_only": False}, {"scim": True}, {"scim": False}):
        raise ValidationError('Scopes are {}, {"read_only": true} or {"scim": true}.')


class ApiKeySchema(JsonApiSchema):
    class Meta:
        type_ = "api_keys"

    name = Str(required=True, min_length=1, max_length=255)
    account_id = Int()
    prefix = Str(dump_only=True)
    scopes = JsonObject(validate=validate_key_scopes)
    expires_at = Timestamp(allow_none=True)
    status = Str(dump_only=True)
    revoked_at = Timestamp(dump_only=True)
    last_used_at = Timestamp(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    account = Rel("accounts", fk="account_id", writable=False)


class ApiKeys(Resource):
    type = "api_keys"
    model = ApiKey
    schema = ApiKeySchema
    actions = ("list", "show", "create", "update", "delete")
    attribute_types = {"status": ft.Enum(STATUSES)}
    sort_expressions = {"status": ApiKey.status}

    def validate(self, state):
        errors, principal = [], state.ctx.principal
        if state.creating:
            require_step_up(principal, state.ctx.now)  # a key is a credential: a second factor first
            # Whose key it may be is the policy's decision (check_write); by default one's own.
            state.values.setdefault("account_id", principal.account_id)
            state.values.setdefault("scopes", {})
            expires_at = state.values.get("expires_at")
            if expires_at is not None and expires_at <= state.ctx.now:
                errors.append(state.error("expires_at", "expires_at must be in the future."))
            if state.values["scopes"].get("scim"):
                errors += self._scim_key_errors(state)
        else:
            for attr in state.values:
                if attr != "name" and state.changed(attr):
                    errors.append(state.error(attr, f"{attr} cannot change; create a new key instead.",
                                              code="read_only"))
        if errors:
            raise JsonApiErrors(errors)

    def _scim_key_errors(self, state):
        """A SCIM key acts on its account's organization: an account of one, and a creator who
        administers it (an admin, or an org_admin of that organization)."""
        from ..models import Account
        account = db.session.get(Account, state.values["account_id"]) if state.values.get("account_id") else None
        if account is None or account.organization_id is None:
            return [state.error("scopes", "A SCIM key acts on its account's organization: the account must "
                                          "belong to one.", code="invalid_value")]
        grants = grants_of(state.ctx.principal)
        if grants.admin or account.organization_id in grants.admin_orgs:
            return []
        raise JsonApiError(403, "forbidden", "Forbidden",
                           "Only an admin or an org_admin of the account's organization creates a SCIM key.")

    def create(self, state):
        raw = new_api_key()
        obj = super().create(state)
        obj.prefix = raw[:8]
        obj.key_digest = digest(raw)
        state.meta["key"] = raw  # shown once, in this response only
        return obj

    audit_actions = {"delete": "revoke"}

    def delete(self, ctx, obj):
        """Revoking keeps the row (status `revoked`) so the owner can see what was revoked."""
        if obj.revoked_at is None:
            obj.revoked_at = ctx.now

    def register_routes(self, api):
        def revoke(id):
            ctx = api.begin(self, "delete", authorize=False)
            spec = query.parse(request.args, self, api, collection=False)
            obj = api.load_for_change(ctx, self, id, "delete")
            before = snapshot(self, obj)
            self.delete(ctx, obj)
            api.on_change(ctx, self, "delete", obj, before, None)
            response = api.render_stored(self, ctx, id, spec)  # before the commit: nothing may fail after it
            api.commit(ctx)
            return response

        api.blueprint.add_url_rule("/api_keys/<int:id>/revoke", "api_keys_revoke", revoke, methods=["POST"])
