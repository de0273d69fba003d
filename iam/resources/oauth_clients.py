"""oauth_clients: the applications that sign their users in through this server, and services
that get tokens with client credentials (contract section 10).

Managed by admins, and by org_admins for their organizations. `client_id` is made by the
server; a confidential client's secret (256 random bits) is answered once in
`meta.client_secret` (and by `POST /oauth_clients/:id/rotate_secret`, which kills the old one)
and stored as its digest. A client with the `client_credentials` grant acts as its
`service_account_id`: naming an account needs the right to change it (a client cannot be a way
to act as an account with more rights than its creator's).
"""
import secrets
from urllib.parse import urlsplit

from flask import request
from marshmallow import ValidationError, fields as ma_fields, validate

from ..jsonapi import JsonApiError, JsonApiErrors, Resource, query
from ..jsonapi.errors import conflict
from ..jsonapi import filters as ft
from ..jsonapi.schema import Bool, Int, JsonApiSchema, Rel, Str, Timestamp
from ..jsonapi.views import snapshot
from ..models import AUTH_METHODS, CLIENT_SCOPES, CLIENT_TYPES, GRANT_TYPES, OAuthClient
from .common import digest, is_loopback


def validate_uris(value):
    """Redirect URIs are compared exactly: absolute https URLs (http only to a loopback host, for
    native and development clients), no fragment."""
    if len(value) > 20:
        raise ValidationError("At most 20 URIs.")
    for uri in value:
        try:
            parts = urlsplit(uri) if isinstance(uri, str) and len(uri) <= 2048 else None
        except ValueError:
            parts = None
        if parts is None or not parts.hostname or parts.fragment or parts.username or parts.password \
                or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not is_loopback(parts.hostname)):
            raise ValidationError(f"{uri!r} is not an https URL without fragment (http only for a loopback host).")


class OAuthClientSchema(JsonApiSchema):
    class Meta:
        type_ = "oauth_clients"

    name = Str(required=True, min_length=1, max_length=200)
    organization_id = Int(allow_none=True)
    client_id = Str(dump_only=True)
    client_type = Str(load_default="confidential", validate=validate.OneOf(CLIENT_TYPES))
    redirect_uris = ma_fields.List(ma_fields.String(), load_default=list, validate=validate_uris)
    post_logout_redirect_uris = ma_fields.List(ma_fields.String(), load_default=list, validate=validate_uris)
    grant_types = ma_fields.List(ma_fields.String(validate=validate.OneOf(GRANT_TYPES)),
                                 load_default=lambda: ["authorization_code"])
    scopes = ma_fields.List(ma_fields.String(validate=validate.OneOf(CLIENT_SCOPES)),
                            load_default=lambda: ["openid", "profile", "email"])
    token_endpoint_auth_method = Str(validate=validate.OneOf(AUTH_METHODS))
    require_consent = Bool(load_default=False)
    service_account_id = Int(allow_none=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    organization = Rel("organizations", fk="organization_id", writable=False)


class OAuthClients(Resource):
    type = "oauth_clients"
    model = OAuthClient
    schema = OAuthClientSchema
    actions = ("list", "show", "create", "update", "delete")
    attribute_types = {"client_type": ft.Enum(CLIENT_TYPES), "token_endpoint_auth_method": ft.Enum(AUTH_METHODS)}

    def validate(self, state):
        errors = []
        if state.get("organization_id") is None and not state.ctx.principal.is_admin:
            raise JsonApiError(403, "forbidden", "Forbidden", "Only administrators register clients of no organization.",
                               pointer=state.pointer("organization_id"))
        for attr in ("grant_types", "scopes", "redirect_uris", "post_logout_redirect_uris"):
            if attr in state.values:
                state.values[attr] = list(dict.fromkeys(state.values[attr]))
        kind = state.get("client_type")
        if state.creating:
            state.values.setdefault("token_endpoint_auth_method",
                                    "none" if kind == "public" else "client_secret_basic")
        elif state.changed("client_type"):
            errors.append(state.error("client_type", "client_type cannot change; register another client.",
                                      code="read_only"))
        method, grants = state.get("token_endpoint_auth_method"), state.get("grant_types") or []
        if kind == "public" and method != "none":
            errors.append(state.error("token_endpoint_auth_method", "A public client has no secret: none."))
        if kind == "confidential" and method == "none":
            errors.append(state.error("token_endpoint_auth_method",
                                      "A confidential client authenticates: client_secret_basic or client_secret_post."))
        if "authorization_code" in grants and not state.get("redirect_uris"):
            errors.append(state.error("redirect_uris", "The authorization_code grant needs a redirect URI."))
        if "refresh_token" in grants and "authorization_code" not in grants:
            errors.append(state.error("grant_types", "refresh_token goes with authorization_code."))
        if "client_credentials" in grants:
            if kind == "public":
                errors.append(state.error("grant_types", "A public client cannot use client_credentials."))
            elif state.get("service_account_id") is None:
                errors.append(state.error("service_account_id", "client_credentials acts as a service account: "
                                                                "name it.", code="required"))
        if errors:
            raise JsonApiErrors(errors)
        if state.changed("service_account_id") and state.get("service_account_id") is not None:
            self._check_service_account(state)

    def _check_service_account(self, state):
        """The account a client acts as: one the caller may change (404 unseen, 403 beyond its
        reach), of the client's organization."""
        accounts = self.registry.resource("accounts")
        try:
            account = self.registry.load_for_change(state.ctx, accounts, state.get("service_account_id"), "update")
        except JsonApiError as error:  # the policy's 404 (unseen) or 403 (beyond reach), at the attribute
            if error.status not in (403, 404):
                raise
            raise JsonApiErrors([state.error("service_account_id", "No account you may act for has this id.",
                                             code="not_found")]) from None
        if account.organization_id != state.get("organization_id"):
            raise JsonApiErrors([state.error("service_account_id",
                                             "The service account belongs to another organization than the client.")])

    def create(self, state):
        obj = super().create(state)
        obj.client_id = secrets.token_urlsafe(18)
        if obj.client_type == "confidential":
            secret = secrets.token_urlsafe(32)
            obj.secret_digest = digest(secret)
            state.meta["client_secret"] = secret  # shown once, in this response only
        return obj

    def register_routes(self, api):
        def oauth_clients_rotate_secret(id):
            ctx = api.begin(self, "rotate_secret", authorize=False)
            spec = query.parse(request.args, self, api, collection=False)
            client = api.load_for_change(ctx, self, id, "rotate_secret")
            if client.client_type != "confidential":
                raise conflict("A public client has no secret.", code="public_client")
            before = snapshot(self, client, ["updated_at"])
            secret = secrets.token_urlsafe(32)
            client.secret_digest = digest(secret)
            api.flush(ctx)
            api.on_change(ctx, self, "rotate_secret", client, before, snapshot(self, client, ["updated_at"]))
            response = api.render_stored(self, ctx, id, spec, meta={"client_secret": secret})
            api.commit(ctx)
            return response

        api.blueprint.add_url_rule("/oauth_clients/<int:id>/rotate_secret", "oauth_clients_rotate_secret",
                                   oauth_clients_rotate_secret, methods=["POST"])
