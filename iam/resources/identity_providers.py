"""identity_providers: an organization's OpenID Connect provider (contract section 8), and
account_identities: the external identities linked to accounts.

The client secret is write-only: it is sealed (iam/secret_store.py) as it is stored, never
rendered (no field dumps it, so `fields[...]` cannot ask for it), never filterable, and
audit records carry `[redacted]` for it. An email domain belongs to at most one provider:
`provider_domains` has the domain as its key, so two writers racing for one domain cannot
both win (409 `not_unique`).
"""
import re
from urllib.parse import urlsplit

from flask import current_app
from marshmallow import ValidationError, fields as ma_fields, validate
from sqlalchemy import func, select, update

from .. import secret_store
from ..jsonapi import Filter, JsonApiError, JsonApiErrors, Resource
from ..jsonapi import filters as ft
from ..jsonapi.errors import conflict
from ..jsonapi.schema import Bool, Int, JsonApiSchema, Rel, Str, Timestamp
from ..models import AccountIdentity, IdentityProvider, IdentityProviderDomain, Invitation
from ..models.identity import DEFAULT_CLAIM_MAPPING, DEFAULT_SCOPES
from .common import is_loopback
from .invitations import InvitedRole, check_role_rows

SECRET_PURPOSE = "identity_providers.client_secret"
KINDS = ("oidc",)
# The person attributes a claim may fill at just-in-time creation.
MAPPABLE = ("first_name", "middle_name", "last_name", "picture_url", "gender", "birthday", "secondary_email",
            "contact_number", "physical_address")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_CLAIM = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def callback_url():
    """The redirect URI to register at the provider."""
    return current_app.config["IAM_ISSUER"].rstrip("/") + "/api/v3/iam/auth/sso/callback"


def validate_issuer(value):
    """An https URL (plain http only to a loopback address: a provider run beside the server,
    as tests and development do), no query or fragment (discovery appends its path)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("issuer must be an https URL.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValidationError("issuer must be an https URL (http only for a provider on a loopback address).")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError("issuer may not carry a query, a fragment or credentials.")


def validate_scopes(value):
    names = value.split()
    if "openid" not in names:
        raise ValidationError("scopes must include openid.")
    if any(not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", name) for name in names):
        raise ValidationError("scopes are space-separated scope tokens (RFC 6749 section 3.3).")


def validate_domains(value):
    if len(value) > 100:
        raise ValidationError("At most 100 email domains.")
    for domain in value:
        if not isinstance(domain, str) or not _DOMAIN.match(domain.strip().lower()):
            raise ValidationError(f"{domain!r} is not a domain name (example.com).")


def validate_claim_mapping(value):
    for attribute, claim in value.items():
        if attribute not in MAPPABLE:
            raise ValidationError(f"{attribute!r} is not a person attribute a claim may fill; those are "
                                  + ", ".join(MAPPABLE) + ".")
        if not isinstance(claim, str) or not _CLAIM.match(claim):
            raise ValidationError(f"The claim for {attribute} must be a claim name.")


class IdentityProviderSchema(JsonApiSchema):
    class Meta:
        type_ = "identity_providers"

    organization_id = Int(required=True)
    name = Str(required=True, min_length=1, max_length=200)
    kind = Str(load_default="oidc", validate=validate.OneOf(KINDS))
    issuer = Str(required=True, max_length=2048, validate=validate_issuer)
    client_id = Str(required=True, min_length=1, max_length=512)
    client_secret = Str(load_only=True, allow_none=True, max_length=4096)  # write-only
    scopes = Str(load_default=DEFAULT_SCOPES, max_length=1024, validate=validate_scopes)
    email_domains = ma_fields.List(ma_fields.String(), load_default=list, validate=validate_domains)
    jit_provisioning = Bool(load_default=False)
    default_roles = ma_fields.List(ma_fields.Nested(InvitedRole), load_default=list, validate=validate.Length(max=50))
    claim_mapping = ma_fields.Dict(load_default=lambda: dict(DEFAULT_CLAIM_MAPPING), validate=validate_claim_mapping)
    enforced = Bool(load_default=False)
    enabled = Bool(load_default=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    organization = Rel("organizations", fk="organization_id", writable=False)


class IdentityProviders(Resource):
    type = "identity_providers"
    model = IdentityProvider
    schema = IdentityProviderSchema
    actions = ("list", "show", "create", "update", "delete")
    attribute_types = {"kind": ft.Enum(KINDS)}
    extra_filters = (
        Filter("email_domain", ft.String(), operators=("eq",),
               build=lambda op, values, ctx: IdentityProvider.domains.any(
                   IdentityProviderDomain.domain == values[0].strip().lower()),
               doc="Providers that hold this email domain (compared case-insensitively)."),
    )

    def validate(self, state):
        errors = []
        if not state.creating and state.changed("organization_id"):
            errors.append(JsonApiError(422, "read_only", "Invalid attribute",
                                       "An identity provider cannot move to another organization.",
                                       pointer=state.pointer("organization_id")))
        if "email_domains" in state.values:
            state.values["email_domains"] = sorted({d.strip().lower() for d in state.values["email_domains"]})
        if errors:
            raise JsonApiErrors(errors)
        if state.changed("default_roles") or state.creating:
            state.values.setdefault("default_roles", [])
            # The roles it gives the accounts it creates: rows of its own organization only
            # (the reach to grant them is the policy's check, as for groups and invitations).
            check_role_rows(state, self.registry, "default_roles")
        if state.changed("email_domains") or state.creating:
            self._check_domains(state)

    def _check_domains(self, state):
        domains = state.get("email_domains") or []
        if not domains:
            return
        taken = state.ctx.session.scalars(select(IdentityProviderDomain.domain).where(
            IdentityProviderDomain.domain.in_(domains),
            IdentityProviderDomain.identity_provider_id != (state.obj.id if state.obj else -1))).all()
        if taken:
            # Whether another organization's provider holds it is not the caller's to learn
            # beyond "taken": the answer is the same whoever holds it.
            raise conflict("An email domain belongs to one identity provider at most: "
                           + ", ".join(sorted(taken)) + " already has one.", code="not_unique",
                           pointer=state.pointer("email_domains"))

    def object_meta(self):
        return {"redirect_uri": callback_url()}

    def create(self, state):
        secret = state.values.pop("client_secret", None)
        domains = state.values.get("email_domains") or []
        obj = super().create(state)
        obj.client_secret_sealed = None if secret is None else secret_store.seal(secret, SECRET_PURPOSE)
        obj.domains = [IdentityProviderDomain(domain=d) for d in domains]
        return obj

    def update(self, state):
        given, secret = "client_secret" in state.values, state.values.pop("client_secret", None)
        obj = super().update(state)
        if given:
            obj.client_secret_sealed = None if secret is None else secret_store.seal(secret, SECRET_PURPOSE)
        if "email_domains" in state.values:
            current = {d.domain: d for d in obj.domains}
            wanted = state.values["email_domains"]
            obj.domains = [current.get(d) or IdentityProviderDomain(domain=d) for d in wanted]
        return obj

    def delete(self, ctx, obj):
        """Its pending invitations can never be accepted now: they are revoked with it."""
        ctx.session.execute(
            update(Invitation).where(Invitation.identity_provider_id == obj.id, Invitation.accepted_at.is_(None),
                                     Invitation.revoked_at.is_(None))
            .values(revoked_at=ctx.now, token_digest=None, version=Invitation.version + 1, updated_at=ctx.now)
            .execution_options(synchronize_session=False))
        super().delete(ctx, obj)


def client_secret(provider):
    """The provider's client secret in clear, for the token request (None: a public client)."""
    if provider.client_secret_sealed is None:
        return None
    return secret_store.unseal(provider.client_secret_sealed, SECRET_PURPOSE)


class AccountIdentitySchema(JsonApiSchema):
    class Meta:
        type_ = "account_identities"

    account_id = Int(dump_only=True)
    identity_provider_id = Int(dump_only=True)
    subject = Str(dump_only=True)
    email = Str(dump_only=True)
    last_login_at = Timestamp(dump_only=True)
    created_at = Timestamp(dump_only=True)

    account = Rel("accounts", fk="account_id", writable=False)
    identity_provider = Rel("identity_providers", fk="identity_provider_id", writable=False)


class AccountIdentities(Resource):
    """Read-only links; the account's owner and those who administer it may DELETE one (unlink)."""

    type = "account_identities"
    model = AccountIdentity
    schema = AccountIdentitySchema
    actions = ("list", "show", "delete")


def domain_of(email):
    """The lower-case domain of an email address ('' when it has none)."""
    _, at, domain = (email or "").strip().rpartition("@")
    return domain.lower() if at else ""


def provider_for_domain(session, domain):
    """The identity provider holding this email domain, or None."""
    if not domain:
        return None
    return session.scalar(select(IdentityProvider).join(IdentityProviderDomain).where(
        IdentityProviderDomain.domain == func.lower(domain)))
