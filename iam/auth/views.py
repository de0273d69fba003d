"""Login endpoints: `POST /auth/login` (email + password) and `POST /auth/api/login` (API key).

Every way a login can fail (unknown email, wrong password, disabled, expired, wrong auth
type, unknown or revoked key) answers the same 401, and an unknown email still costs one
password hash, so neither the body nor the time tells which it was.
"""
from flask import request
from marshmallow import Schema, fields
from sqlalchemy import func, select
from webargs.flaskparser import FlaskParser

from ..extensions import db
from ..jsonapi.errors import JsonApiError, JsonApiErrors, invalid_field
from ..jsonapi.media import check_accept, read_json_body
from ..models import Account, ApiKey, utcnow
from ..resources.common import digest
from . import passwords
from .tokens import issue_access_token


class _Parser(FlaskParser):
    """webargs reading auth bodies: a plain JSON object or JSON:API `data.attributes`."""

    DEFAULT_VALIDATION_STATUS = 422

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        wrapped = getattr(req, "_iam_wrapped", False)
        errors = []
        for name, messages in error.messages.get("auth_body", error.messages).items():
            pointer = f"/data/attributes/{name}" if wrapped else f"/{name}"
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


def parse_auth_body(schema):
    return parser.parse(schema, request, location="auth_body")


class LoginSchema(Schema):
    email = fields.String(required=True, validate=lambda s: 0 < len(s) <= 320)
    password = fields.String(required=True, validate=lambda s: 0 < len(s) <= 4096)


class ApiLoginSchema(Schema):
    key = fields.String(validate=lambda s: 0 < len(s) <= 256)
    api_key = fields.String(validate=lambda s: 0 < len(s) <= 256)


def login_failed():
    """The one answer to every failed login."""
    return JsonApiError(401, "invalid_credentials", "Unauthenticated", "Invalid credentials.",
                        headers={"WWW-Authenticate": 'Bearer realm="iam"'})


def token_document(account, now):
    token, expires_at = issue_access_token(account.id, now)
    return {
        "data": None,
        "meta": {
            "token": token,
            "token_type": "Bearer",
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "account_id": str(account.id),
        },
        "jsonapi": {"version": "1.1"},
    }


def login():
    check_accept()
    args = parse_auth_body(LoginSchema())
    now = utcnow()
    account = db.session.scalars(
        select(Account).where(func.lower(Account.email) == args["email"].strip().lower())
    ).one_or_none()
    if account is None:
        passwords.burn_time(args["password"])
        raise login_failed()
    ok = passwords.verify_password(account.password_hash, args["password"])
    if not ok or account.auth_type != "password" or not account.is_active(now):
        raise login_failed()
    if passwords.needs_rehash(account.password_hash):
        account.password_hash = passwords.hash_password(args["password"])
    account.last_login_at = now
    db.session.commit()
    return token_document(account, now)


def api_login():
    check_accept()
    args = parse_auth_body(ApiLoginSchema())
    raw = args.get("key") or args.get("api_key")
    if not raw:
        raise JsonApiErrors([invalid_field("/key", "key (or api_key) is required.", code="required")])
    now = utcnow()
    key = db.session.scalars(select(ApiKey).where(ApiKey.key_digest == digest(raw))).one_or_none()
    if key is None or not key.is_usable(now) or not key.account.is_active(now):
        raise login_failed()
    key.last_used_at = now
    db.session.commit()
    return token_document(key.account, now)


def register(blueprint):
    blueprint.add_url_rule("/auth/login", "auth_login", login, methods=["POST"])
    blueprint.add_url_rule("/auth/api/login", "auth_api_login", api_login, methods=["POST"])
