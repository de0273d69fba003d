"""Login endpoints: password and API-key logins, refresh and logout.

Every way a login can fail (unknown email, wrong password, disabled, expired, wrong auth
type, unknown or revoked key) answers the same 401, and an unknown email still costs one
password hash, so neither the body nor the time tells which it was.
"""
import threading

from flask import current_app, request
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select
from webargs.flaskparser import FlaskParser

from .. import audit, throttle
from ..extensions import db
from ..jsonapi import documents
from ..jsonapi.query import QuerySpec
from ..jsonapi.errors import JsonApiError, JsonApiErrors, invalid_field, json_pointer
from ..jsonapi.media import check_accept, read_json_body
from ..models import Account, AccountSession, ApiKey, IdentityProvider, utcnow
from ..models.base import record_activity
from ..resources.common import digest
from . import passwords, sessions
from .principal import authenticate
from .tokens import issue_access_token


class _Parser(FlaskParser):
    """webargs reading auth bodies: a plain JSON object or JSON:API `data.attributes`."""

    DEFAULT_VALIDATION_STATUS = 422

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        wrapped = getattr(req, "_iam_wrapped", False)
        errors = []
        for name, messages in error.messages.get("auth_body", error.messages).items():
            pointer = json_pointer("data", "attributes", name) if wrapped else json_pointer(name)
            detail = "; ".join(messages) if isinstance(messages, list) else str(messages)
            code = "invalid_value"
            if detail == "Unknown field.":
                detail, code = f"{name} is not accepted here.", "unknown_field"
            elif detail == "Missing data for required field.":
                detail, code = f"{name} is required.", "required"
            errors.append(invalid_field(pointer, detail if code != "invalid_value" else f"{name}: {detail}", code=code))
        raise JsonApiErrors(errors)


parser = _Parser()


@parser.location_loader("auth_body")
def _load_auth_body(req, schema):
    body = read_json_body()
    if not isinstance(body, dict):
        raise JsonApiError(400, "invalid_document", "Bad request", "The body must be a JSON object.", pointer="")
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("attributes"), dict):
        req._iam_wrapped = True
        return data["attributes"]
    if "data" in body:
        raise JsonApiError(400, "invalid_document", "Bad request",
                           "data must be an object with attributes.", pointer="/data")
    return body


def parse_auth_body(schema_class):
    """The body of an auth endpoint, loaded by this thread's instance of `schema_class`."""
    schemas = _auth_schemas.__dict__
    schema = schemas.get(schema_class)
    if schema is None:
        schema = schemas[schema_class] = schema_class()
    return parser.parse(schema, request, location="auth_body")


_auth_schemas = threading.local()  # a schema instance per class and thread (building one per request costs)


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class ApiLoginSchema(Schema):
    key = fields.String(validate=validate.Length(min=1, max=256))
    api_key = fields.String(validate=validate.Length(min=1, max=256))


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=256))


# What a correct password may still need before it signs in: each step is called with
# (api, account, now) after the password was checked, and answers a document of its own
# (committed) instead of the login, or None. iam/mfa/ adds the second factor here, so that
# auth/ needs nothing of it.
PASSWORD_STEPS = []


def login_failed():
    """The one answer to every failed login."""
    return JsonApiError(401, "invalid_credentials", "Unauthenticated", "Invalid credentials.",
                        headers={"WWW-Authenticate": 'Bearer realm="iam"'})


def session_document(api, session, now, refresh_token=None):
    """Like a login: `data` the session resource, the tokens in `meta`."""
    token, expires_at = issue_access_token(session.account_id, session.id, now, not_after=session.expires_at)
    ctx = api.context(principal=None, authenticate=False)
    resource = api.resource("account_sessions")
    document = documents.single_document(resource, session, QuerySpec(), ctx)
    document["meta"] = {
        "token": token,
        "token_type": "Bearer",
        "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "account_id": str(session.account_id),
    }
    if refresh_token is not None:
        document["meta"]["refresh_token"] = refresh_token
        document["meta"]["refresh_expires_at"] = session.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return document


def committed_session_document(api, session, now, refresh_token=None):
    """Commit a login, and its answer: the document is built first, inside the transaction, from
    the session as stored (as a read after the commit would), so nothing can fail after the commit."""
    db.session.flush()
    db.session.expire(session)
    document = session_document(api, session, now, refresh_token)
    db.session.commit()
    return document


def password_forbidden(account):
    """Whether this account may not sign in with a password: an `sso` account, or one whose
    organization has an enabled identity provider that is `enforced` (contract section 8)."""
    if account.auth_type == "sso":
        return True
    if account.organization_id is None:
        return False
    return db.session.scalar(select(IdentityProvider.id).where(
        IdentityProvider.organization_id == account.organization_id, IdentityProvider.enforced.is_(True),
        IdentityProvider.enabled.is_(True)).limit(1)) is not None


def _find_account(email):
    return db.session.scalars(
        select(Account).where(func.lower(Account.email) == email.strip().lower())).one_or_none()


def check_password(email, password, now):
    """The account whose password this is and that may sign in with it now, else None (the
    failure counted against the account, audited, and committed). The API's login and the
    sign-in pages (iam/web/) both ask this: one throttle, one lockout."""
    account = _find_account(email)
    if account is None or not throttle.claim_login_attempt(account.id, now):
        passwords.burn_time(password)  # unknown or locked: same answer, same time
        return None
    ok = passwords.verify_password(account.password_hash, password)
    if not ok or account.auth_type != "password" or not account.is_active(now) or password_forbidden(account):
        audit.record("login_failed", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                     organization_id=account.organization_id)
        if throttle.lock_if_exhausted(account.id, now):
            audit.record("lock", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                         organization_id=account.organization_id)
        db.session.commit()
        return None
    return account


def password_signed_in(account, password, now):
    """Bookkeeping of a password sign-in that needs nothing more (no edit: parallel logins to
    one account must all succeed): the failures forgotten, the hash renewed if its parameters aged."""
    values = {"failed_login_count": 0, "locked_until": None, "last_login_at": now}
    if passwords.needs_rehash(account.password_hash):
        values["password_hash"] = passwords.hash_password(password)
    record_activity(db.session, account, now, **values)


def login(api):
    check_accept()
    args = parse_auth_body(LoginSchema)
    now = utcnow()
    account = check_password(args["email"], args["password"], now)
    if account is None:
        raise login_failed()
    for step in PASSWORD_STEPS:  # a second factor still to come (iam/mfa/signin.py)
        answer = step(api, account, now)
        if answer is not None:
            return answer
    password_signed_in(account, args["password"], now)
    session = sessions.open_session(account, now)
    refresh_token = sessions.new_refresh_token(session)
    audit.record("login", actor_id=account.id, resource_type="account_sessions", resource_id=session.id,
                 organization_id=account.organization_id)
    return committed_session_document(api, session, now, refresh_token)


def api_login(api):
    check_accept()
    args = parse_auth_body(ApiLoginSchema)
    raw = args.get("key") or args.get("api_key")
    if not raw:
        raise JsonApiErrors([invalid_field("/key", "key (or api_key) is required.", code="required")])
    now = utcnow()
    key = db.session.scalars(select(ApiKey).where(ApiKey.key_digest == digest(raw))).one_or_none()
    if key is None or not key.is_usable(now) or not key.account.is_active(now) or key.scopes.get("scim"):
        raise login_failed()  # a SCIM key works at /scim/v2 only (contract section 11)
    record_activity(db.session, key, now, last_used_at=now)  # parallel key logins must all succeed
    # A key login is a short session of its own: it lasts as long as its access token.
    lifetime = current_app.config["IAM_ACCESS_TOKEN_TTL"]
    if key.expires_at is not None:
        lifetime = max(1, min(lifetime, int((key.expires_at - now).total_seconds())))
    session = sessions.open_session(key.account, now, api_key=key, lifetime=lifetime,
                                    read_only=bool(key.scopes.get("read_only")))
    audit.record("login", actor_id=key.account_id, resource_type="api_keys", resource_id=key.id,
                 organization_id=key.account.organization_id)
    return committed_session_document(api, session, now)


def refresh(api):
    check_accept()
    args = parse_auth_body(RefreshSchema)
    now = utcnow()
    try:
        session, refresh_token = sessions.rotate(args["refresh_token"], now)
    except sessions.RefreshRefused:
        raise JsonApiError(401, "invalid_token", "Unauthenticated",
                           "The refresh token is invalid, used or expired; log in again.") from None
    return committed_session_document(api, session, now, refresh_token)


def logout(api):
    check_accept()
    principal = authenticate()
    now = utcnow()
    session = db.session.get(AccountSession, principal.session_id)  # the principal's is a read-only row
    if session is not None:  # else deleted since authentication read it: nothing left to end
        sessions.end(session, now)
    audit.record("logout", actor_id=principal.account_id, resource_type="account_sessions",
                 resource_id=principal.session_id, organization_id=principal.account.organization_id)
    db.session.commit()
    return "", 204


def register(api):
    # Named views: rate limits (iam/throttle.py) are keyed by the view's name.
    def auth_login():
        return login(api)

    def auth_api_login():
        return api_login(api)

    def auth_refresh():
        return refresh(api)

    def auth_logout():
        return logout(api)

    for path, view in (("/auth/login", auth_login), ("/auth/api/login", auth_api_login),
                       ("/auth/refresh", auth_refresh), ("/auth/logout", auth_logout)):
        api.blueprint.add_url_rule(path, view.__name__, view, methods=["POST"])
