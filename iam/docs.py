"""GET /api/v3/iam/openapi.json and /docs: the engine's generated document, plus what only IAM knows.

The resources document themselves (iam/jsonapi/openapi.py). This module adds the rest:
the title and the deliberate differences from JSON:API, and, for the endpoints that are
not resources (logins, passwords, /accounts/me, ...), their summaries, bodies, which are
public and which are rate limited.

iam/api.py calls register(api) once every other route is on the blueprint. The docs page
gets its own Content-Security-Policy (iam/security_headers.py): it runs only this server's scripts.
"""
from importlib.metadata import PackageNotFoundError, version

import swagger_ui_bundle

from .auth.email_change import ConfirmSchema
from .auth.password_views import ChangeSchema, RequestResetSchema, ResetSchema
from .auth.views import ApiLoginSchema, LoginSchema, RefreshSchema
from .sso.realm import LoginUrlSchema
from .mfa.signin import ChallengeSchema, MfaSchema, StepUpSchema
from .resources.mfa_factors import VerifySchema
from .sso.flow import ExchangeSchema
from .jsonapi.openapi import field_schema, register_docs, schema_ref
from .resources.invitations import AcceptSchema, InvitationSchema
from .resources.organizations import IncrementSchema
from .security_headers import DOCS_POLICY
from .throttle import ROUTE_LIMITS

DESCRIPTION = """\
Identity and access management: accounts, people, organizations and their units, roles,
sessions and API keys, spoken as JSON:API 1.1 (`application/vnd.api+json`).

Every operation needs `Authorization: Bearer <token>` unless it says `security: []`. Get a
token from `POST /auth/login` (email and password) or `POST /auth/api/login` (an API key).

## Deliberate differences from JSON:API 1.1
Kept for compatibility with Pulse IAM v3 clients:
- the all-lowercase query parameters `count` and `included` (JSON:API reserves such names;
  the standard `include` is accepted too and means the same);
- `*_id` attributes (`person_id`, `organization_id`, ...) beside the relationships that carry
  the same link;
- `application/json` is accepted for request bodies and in `Accept`;
- `data.type` and `fields[...]` also accept the Pulse spellings `iam/accounts`, `iam/people`,
  `iam/organizations`, `iam/organizational_units` and `iam/account/roles`;
- the authentication and password endpoints take a plain JSON object or the same fields as
  JSON:API `data.attributes`.
"""


def _version():
    try:
        return version("iam")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


def _text(**extra):
    return {"type": "string", **extra}


def _fields_body(schema, secret=(), descriptions=None, **extra):
    """Auth bodies, from the marshmallow schema the view loads (so lengths and required fields are
    the ones it checks): a plain JSON object, or the same fields as JSON:API `data.attributes`."""
    properties, required = {}, []
    for name, field in schema._declared_fields.items():
        properties[name] = field_schema(field)
        if name in secret:
            properties[name].update(_SECRET)
        if descriptions and name in descriptions:
            properties[name]["description"] = descriptions[name]
        if field.required:
            required.append(name)
    # Any other member is a 422 (unknown_field).
    plain = {"type": "object", "properties": properties, "additionalProperties": False,
             **({"required": required} if required else {}), **extra}
    wrapped = {"type": "object", "required": ["data"], "properties": {"data": {
        "type": "object", "required": ["attributes"],
        # data.type is not checked (docs/API.md section 5): any value, or none.
        "properties": {"type": {"description": "Not checked."}, "attributes": plain}}}}
    return {"anyOf": [plain, wrapped]}


_SECRET = {"writeOnly": True, "format": "password"}

# Logins answer with the new account_sessions resource and the tokens in meta.
_SESSION = {"description": "The new session; the tokens are in `meta`.", "content": {
    "application/vnd.api+json": {"schema": {"allOf": [schema_ref("account_sessions"), {
        "type": "object", "properties": {"meta": {"type": "object", "properties": {
            "token": _text(description="Access token, for `Authorization: Bearer`."),
            "token_type": _text(enum=["Bearer"]),
            "expires_at": _text(format="date-time"),
            "account_id": _text(),
            "refresh_token": _text(description="Works once, at POST /auth/refresh (not for API-key logins)."),
            "refresh_expires_at": _text(format="date-time")}}}}]}}}}

# The policy catalogue's resource objects (GET /organizational_units/policies[/{key}]).
_POLICY = {"type": "object", "required": ["type", "id", "attributes", "links"], "properties": {
    "type": _text(enum=["policies"]), "id": _text(description="The policy's key."),
    "attributes": {"type": "object", "required": ["key", "value_type", "description"], "properties": {
        "key": _text(), "value_type": _text(enum=["boolean", "integer", "array"]), "description": _text()}},
    "links": {"type": "object", "required": ["self"], "properties": {"self": _text(format="uri")}}}}


def _document(data, description, **properties):
    return {"description": description, "content": {"application/vnd.api+json": {"schema": {
        "type": "object", "required": ["data"], "properties": {"data": data, **properties}}}}}


OPERATIONS = {
    "GET /organizational_units/policies": {
        "summary": "The catalogue of policy keys a unit's `policies` may hold",
        "responses": {"200": _document({"type": "array", "items": _POLICY}, "Every policy of the catalogue.",
                                       meta={"type": "object", "properties": {"count": {"type": "integer"}}})}},
    "GET /organizational_units/policies/{key}": {
        "summary": "One policy of the catalogue, by its key", "description": "An unknown key is a 404.",
        "responses": {"200": _document(_POLICY, "The policy.")}},
    "PATCH /invitations/{id}": {
        "summary": "Change the roles of a pending invitation",
        "description": "Only `roles` can change, with the same checks as on create; any other attribute is a "
                       "422 (`read_only`). An invitation that is not pending (accepted, revoked or expired) is a "
                       "409 (`not_pending`). The acceptance grants the roles the invitation holds then.",
        "body": {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "object", "required": ["type", "id"], "additionalProperties": False, "properties": {
                "type": _text(enum=["invitations"]), "id": _text(pattern="^[0-9]+$"),
                "meta": {"description": "Not read."},
                "attributes": {"type": "object", "additionalProperties": False, "properties": {
                    "roles": field_schema(InvitationSchema._declared_fields["roles"])}}}}}},
        "errors": ("409", "412")},
    "POST /auth/login": {
        "public": True, "summary": "Log in with email and password",
        "description": "Every failure (unknown email, wrong password, disabled, expired or locked account) "
                       "answers the same 401; repeated failures from one address answer 429. For an account with "
                       "an active second factor the 200 carries no token but `meta.mfa_required`, `meta.mfa_token` "
                       "and `meta.factors` (finish at `POST /auth/mfa`); where an `mfa_required` policy applies "
                       "to an account without one, `meta.mfa_enrollment_required` and a token that may only enrol "
                       "one.",
        "body": _fields_body(LoginSchema, secret=("password",)),
        "responses": {"200": _SESSION}, "errors": ("401",)},
    "POST /auth/api/login": {
        "public": True, "summary": "Log in with an API key",
        "body": _fields_body(ApiLoginSchema, secret=("key", "api_key"),
                             descriptions={"key": "The key (Pulse name).", "api_key": "The key (same as key)."},
                             anyOf=[{"required": ["key"]}, {"required": ["api_key"]}]),
        "responses": {"200": _SESSION}, "errors": ("401",)},
    "POST /auth/login_url": {
        "public": True, "summary": "Home-realm discovery: how an email signs in",
        "description": "`meta.method` is `sso` when an enabled identity provider holds the email's domain "
                       "(then `meta.url` starts its sign-in in a browser, with the email as `login_hint`, and "
                       "`meta.identity_provider_id` names it), else `password`. The answer depends only on the "
                       "domain, never on whether an account exists. A `return_to` outside IAM_SSO_RETURN_URLS "
                       "is a 400 (`invalid_return_to`).",
        "body": _fields_body(LoginUrlSchema,
                             descriptions={"email": "The address someone typed.",
                                           "return_to": "Where the browser goes once signed in."}),
        "responses": {"200": {"description": "`meta.method`, and for `sso` `meta.url` and "
                                             "`meta.identity_provider_id`.",
                              "content": {"application/vnd.api+json": {"schema": {
                                  "type": "object", "required": ["meta"], "properties": {"meta": {
                                      "type": "object", "required": ["method"], "properties": {
                                          "method": _text(enum=["password", "sso"]),
                                          "url": _text(format="uri"),
                                          "identity_provider_id": _text(pattern="^[0-9]+$")}}}}}}}},
        "errors": ("400",)},
    "GET /auth/sso/start": {
        "public": True, "summary": "Start signing in through an identity provider (a browser opens this)",
        "description": "302 to the provider's authorization endpoint: the authorization code flow with PKCE "
                       "(S256), a single-use `state`, a `nonce` and the `login_hint`; sets the HttpOnly "
                       "`iam_sso_browser` cookie that binds the attempt to this browser. An unknown or disabled "
                       "provider is a 401 `sso_failed`; a `return_to` outside IAM_SSO_RETURN_URLS a 400; a "
                       "provider that cannot be reached a 503.",
        "parameters": [
            {"name": "identity_provider_id", "in": "query", "required": True, "schema": _text(pattern="^[0-9]+$")},
            {"name": "login_hint", "in": "query", "required": False, "schema": _text(maxLength=320)},
            {"name": "return_to", "in": "query", "required": False, "schema": _text(maxLength=2048)}],
        "responses": {"302": "To the identity provider's authorization endpoint."},
        "errors": ("400", "401", "503")},
    "GET /auth/sso/callback": {
        "public": True, "summary": "Where the identity provider sends the browser back (register this URL there)",
        "description": "Claims the sign-in's `state` once, trades the `code` with PKCE, validates the ID token "
                       "(the provider's JWKS, an asymmetric algorithm, `iss`, `aud`, `exp`, `iat`, `nonce`), "
                       "requires a verified email in the provider's `email_domains` and finds the account: the "
                       "linked identity, else the email inside the provider's organization (then linked), else a "
                       "new account when `jit_provisioning` is on. Without `return_to`: 200 with the login "
                       "document (`amr: [\"sso\"]`). With one: 302 to `return_to?sso_code=...`, a code that "
                       "`POST /auth/sso/exchange` trades once within 60 seconds. Every refusal is the same 401 "
                       "`sso_failed` (or `no_account` when no account may sign in with the identity), audited.",
        "parameters": [
            {"name": "state", "in": "query", "required": True, "schema": _text(maxLength=512)},
            {"name": "code", "in": "query", "required": False, "schema": _text(maxLength=2048),
             "description": "Required unless the provider answered `error`."},
            {"name": "error", "in": "query", "required": False, "schema": _text(maxLength=256)}],
        "responses": {"200": _SESSION, "302": "To `return_to` with `sso_code`."},
        "errors": ("400", "401", "503")},
    "POST /auth/sso/exchange": {
        "public": True, "summary": "Trade a single sign-on code for the login answer",
        "description": "The `sso_code` the callback put on `return_to`: once, within 60 seconds. A second use "
                       "ends the session the code opened.",
        "body": _fields_body(ExchangeSchema, secret=("code",)),
        "responses": {"200": _SESSION}, "errors": ("401",)},
    "POST /auth/mfa": {
        "public": True, "summary": "The second step of a sign-in: a code or a passkey",
        "description": "After `POST /auth/login` answered `meta.mfa_required` and an `mfa_token` (single use, 5 "
                       "minutes): a TOTP or recovery `code`, or for a passkey `factor_id` and the browser's "
                       "`credential` (after `POST /auth/mfa/challenge`). Answers the login (`amr` `[\"pwd\", "
                       "\"otp\"]` or `[\"pwd\", \"hwk\"]`). A refused code is a 401 `invalid_code`; wrong codes "
                       "count toward the account lock, and the `mfa_token` dies after 5 (then a 401 "
                       "`invalid_token`).",
        "body": _fields_body(MfaSchema, secret=("mfa_token", "code")),
        "responses": {"200": _SESSION}, "errors": ("401",)},
    "POST /auth/mfa/challenge": {
        "public": True, "summary": "A passkey's request options, for a sign-in or a step-up",
        "description": "With `mfa_token`: for the second step of a sign-in. Without it, with the bearer token: for "
                       "`POST /auth/step_up`. `meta.options` are the PublicKeyCredentialRequestOptions (JSON) to "
                       "give `navigator.credentials.get`.",
        "body": _fields_body(ChallengeSchema, secret=("mfa_token",)),
        "responses": {"200": {"description": "`meta.options`.", "content": {"application/vnd.api+json": {
            "schema": {"type": "object", "required": ["meta"], "properties": {"meta": {
                "type": "object", "properties": {"options": {"type": "object"}}}}}}}}},
        "errors": ("401", "422")},
    "POST /auth/step_up": {
        "summary": "Prove a second factor in this session again",
        "description": "Changing the password or email, creating an API key and deleting a factor need a second "
                       "factor proven within 10 minutes (otherwise 403 `step_up_required`) by accounts that have "
                       "one. A `code`, or `factor_id` and `credential` after `POST /auth/mfa/challenge`. Answers "
                       "the session. 409 `no_second_factor` when the account has none.",
        "body": _fields_body(StepUpSchema, secret=("code",)),
        "responses": {"200": _document(schema_ref("account_sessions"), "The session, with its new `amr`.")},
        "errors": ("401", "409")},
    "POST /auth/refresh": {
        "public": True, "summary": "Trade a refresh token for a new pair",
        "description": "A refresh token works once: presenting a used one ends the whole session.",
        "body": _fields_body(RefreshSchema, secret=("refresh_token",)),
        "responses": {"200": _SESSION}, "errors": ("401",)},
    "POST /auth/logout": {
        "summary": "End the caller's session", "body": None, "responses": {"204": "Session ended."}},
    "POST /account/passwords/request_reset": {
        "public": True, "summary": "Mail a password-reset token",
        "description": "Answers 204 whether or not the address has an account.",
        "body": _fields_body(RequestResetSchema),
        "responses": {"204": "Accepted."}},
    "POST /account/passwords/reset": {
        "public": True, "summary": "Set a new password with a reset token",
        "description": "The token works once and for one hour; every session of the account ends.",
        "body": _fields_body(ResetSchema, secret=("token", "password")),
        "responses": {"204": "Password changed."}},
    "GET /account/passwords/token_valid": {
        "public": True, "summary": "Whether a reset token is still valid",
        "parameters": [{"name": "token", "in": "query", "required": True, "schema": _text(minLength=1)}],
        "responses": {"200": {"description": "`meta.valid`.", "content": {"application/vnd.api+json": {
            "schema": {"type": "object", "properties": {"meta": {"type": "object", "properties": {
                "valid": {"type": "boolean"}}}}}}}}}},
    "POST /account/passwords/change": {
        "summary": "Change the caller's password", "description": "The caller's other sessions end.",
        "body": _fields_body(ChangeSchema, secret=("current_password", "new_password")),
        "responses": {"204": "Password changed."}},
    "POST /account/email/confirm": {
        "public": True, "summary": "Confirm a self-service email change with the mailed token",
        "description": "The pending address becomes the account's email; the token works once. 409 if the "
                       "address has been taken meanwhile. Reset tokens mailed to the old address die.",
        "body": _fields_body(ConfirmSchema, secret=("token",)),
        "responses": {"204": "Email changed."}, "errors": ("409",)},
    "POST /invitations/accept": {
        "public": True, "summary": "Accept an invitation",
        "body": _fields_body(AcceptSchema, secret=("token", "password")), "responses": {"200": _SESSION}},
    "GET /accounts/me": {"resource": "accounts", "summary": "The caller's own account", "errors": ("404",)},
    "PATCH /accounts/me": {
        "resource": "accounts", "summary": "Self-service changes to the caller's own account",
        "description": "Any other attribute, and any relationship, is a 403. A new `email` needs "
                       "`current_password` and takes effect once confirmed from the new address "
                       "(`POST /account/email/confirm`); the answer's `meta.email_change` says it is pending, "
                       "and is the same whether or not the address already has an account.",
        "body": {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "object", "required": ["type"], "properties": {
                "type": _text(enum=["accounts", "iam/accounts"]),
                "id": _text(description="The caller's own account id, or left out."),
                "attributes": {"type": "object", "properties": {
                    "preferences": {"type": "object"},
                    "consent_given": {"type": "boolean", "description": "Sets or clears consent_given_at."},
                    "first_name": _text(maxLength=255), "last_name": _text(maxLength=255),
                    "email": _text(format="email"),
                    "current_password": _text(**_SECRET)}}}}}},
        "errors": ("404", "409")},
    "POST /accounts/{id}/password_reset": {
        "summary": "Mail the owner a password-reset link", "body": None,
        "responses": {"204": "Mailed."}, "errors": ("404", "409")},
    "POST /mfa_factors/{id}/verify": {
        "resource": "mfa_factors", "summary": "Activate a pending factor of one's own",
        "description": "A TOTP factor with a `code` from the authenticator app; a passkey with the browser's "
                       "attestation `credential` for the options its create answered. Proves a second factor in "
                       "the caller's session (and lifts an enrolment-only limit). A refused code is a 401 "
                       "`invalid_code`; an active factor a 409 `not_pending`.",
        "body": _fields_body(VerifySchema, secret=("code",)), "errors": ("401", "404", "409")},
    "POST /oauth_clients/{id}/rotate_secret": {
        "resource": "oauth_clients", "summary": "A new secret for a confidential client",
        "description": "Answered once in `meta.client_secret`; the old secret stops working. A public client is "
                       "a 409 (`public_client`).",
        "body": None, "errors": ("404", "409")},
    "POST /api_keys/{id}/revoke": {
        "resource": "api_keys", "summary": "Revoke an API key", "body": None, "errors": ("404",)},
    "POST /organizations/{id}/increment": {
        "resource": "organizations", "summary": "Add to quota_usage atomically",
        "description": "Past `quota_limit` it is a 429 and nothing is added.",
        "body": _fields_body(IncrementSchema), "errors": ("404", "429")},
}
# The rate-limited endpoints (or methods of them) can also answer 429.
for _endpoint, (_setting, _deduct_when, *_methods) in ROUTE_LIMITS.items():
    OPERATIONS.setdefault(_endpoint, {})["errors"] = ("429",)
    if _methods:
        OPERATIONS[_endpoint]["methods"] = _methods[0]

INFO = {"title": "IAM API", "version": _version(), "description": DESCRIPTION}

def register(api):
    register_docs(api, INFO, swagger_ui_bundle.swagger_ui_path, OPERATIONS,
                  page_headers={"Content-Security-Policy": DOCS_POLICY})
