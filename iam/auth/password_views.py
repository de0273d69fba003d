"""Password endpoints: request a reset, reset with a token, check a token, change.

A reset token is 256 random bits mailed to the owner and stored as its SHA-256 digest on
the account with a one-hour expiry; a new request replaces it, so older tokens die. Using
it is one conditional UPDATE (digest still there and unexpired), so a token works once
even when two requests race, and every session of the account ends.
"""
import secrets
from datetime import timedelta

from flask import current_app, request
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select, update

from .. import audit, background, mail
from ..extensions import db
from ..jsonapi.errors import JsonApiError, JsonApiErrors, invalid_field, unauthenticated
from ..jsonapi.media import check_accept
from ..models import Account, utcnow
from ..resources.common import digest
from . import passwords, sessions
from .principal import authenticate
from .stepup import require_step_up
from .views import parse_auth_body

RESET_TTL = timedelta(hours=1)


class RequestResetSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))


class ResetSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = fields.String(required=True, validate=validate.Length(max=4096))


class ChangeSchema(Schema):
    current_password = fields.String(required=True, validate=validate.Length(max=4096))
    new_password = fields.String(required=True, validate=validate.Length(max=4096))


def _check_new_password(password, name):
    problem = passwords.policy_problem(password)
    if problem:
        pointer = f"/data/attributes/{name}" if getattr(request, "_iam_wrapped", False) else f"/{name}"
        raise JsonApiErrors([invalid_field(pointer, problem, code="weak_password")])


def issue_reset_token(account, now):
    """Store a fresh token's digest on the account (killing older ones) and mail the token."""
    raw = secrets.token_urlsafe(32)
    account.password_reset_token_digest = digest(raw)
    account.password_reset_token_expires_at = now + RESET_TTL
    template = current_app.config.get("IAM_PASSWORD_RESET_URL")
    if template:
        action = f"Open this link to choose a new password:\n\n{template.replace('{token}', raw)}"
    else:
        action = (f"Send this token with your new password to POST /api/v3/iam/account/passwords/reset:\n\n{raw}")
    return raw, (f"Someone asked to reset the password of {account.email}.\n\n{action}\n\n"
                 "It works once, within one hour. If you did not ask for this, ignore this message.")


def request_reset():
    """Always 204 at once: the lookup, the token and the mail happen on the background worker,
    so neither the answer nor its timing tells whether the address has an account."""
    check_accept()
    args = parse_auth_body(RequestResetSchema)
    app = current_app._get_current_object()
    background.submit(_issue_reset, app, args["email"].strip().lower(), request.remote_addr)
    return "", 204


def _issue_reset(app, email, ip):
    with app.app_context():
        now = utcnow()
        account = db.session.scalars(select(Account).where(func.lower(Account.email) == email)).one_or_none()
        if account is None or not account.is_active(now) or account.auth_type != "password":
            return
        _, body = issue_reset_token(account, now)
        audit.record("password_reset_requested", actor_id=account.id, resource_type="accounts",
                     resource_id=account.id, organization_id=account.organization_id, ip=ip)
        to = account.email  # read before the commit (which expires the row)
        db.session.commit()
        mail.send(to, "Reset your password", body)


def invalid_token(kind="reset"):
    """The one answer to an unknown, used or expired mailed token (reset, email confirmation)."""
    return JsonApiError(400, "invalid_token", "Bad request",
                        f"The {kind} token is invalid, used or expired; ask for a new one.", pointer="/token")


def reset():
    check_accept()
    args = parse_auth_body(ResetSchema)
    _check_new_password(args["password"], "password")
    now = utcnow()
    token_digest = digest(args["token"])
    account = db.session.scalars(select(Account).where(Account.password_reset_token_digest == token_digest)
                                 ).one_or_none()
    if account is None or not account.is_active(now):
        raise invalid_token()
    new_hash = passwords.hash_password(args["password"])
    claimed = db.session.execute(
        update(Account)
        .where(Account.id == account.id, Account.password_reset_token_digest == token_digest,
               Account.password_reset_token_expires_at > now)
        .values(password_hash=new_hash, password_reset_token_digest=None, password_reset_token_expires_at=None,
                email_verified_at=now, version=Account.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise invalid_token()
    sessions.end_all(account.id, now)
    audit.record("password_reset", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                 organization_id=account.organization_id)
    db.session.commit()
    return "", 204


def token_valid():
    check_accept()
    unknown = [key for key in request.args if key != "token"]
    if unknown:
        raise JsonApiError(400, "unknown_parameter", "Invalid query parameter",
                           f"Unknown query parameter {unknown[0]!r}.", parameter=unknown[0])
    token = request.args.get("token", "")
    if not token:
        raise JsonApiError(400, "invalid_parameter", "Invalid query parameter", "token is required.",
                           parameter="token")
    valid = db.session.scalar(
        select(func.count()).select_from(Account).where(
            Account.password_reset_token_digest == digest(token),
            Account.password_reset_token_expires_at > utcnow(), Account.enabled.is_(True))) > 0
    return {"meta": {"valid": valid}, "jsonapi": {"version": "1.1"}}


def change():
    check_accept()
    principal = authenticate()
    if principal.read_only:
        raise JsonApiError(403, "forbidden", "Forbidden", "This API key is read-only.")
    require_step_up(principal, utcnow())
    args = parse_auth_body(ChangeSchema)
    account = db.session.get(Account, principal.account_id)  # the principal's is a read-only row
    if account is None:  # deleted since authentication read it
        raise unauthenticated("The access token is invalid or has expired.")
    if not passwords.verify_password(account.password_hash, args["current_password"]):
        pointer = "/data/attributes/current_password" if getattr(request, "_iam_wrapped", False) \
            else "/current_password"
        raise JsonApiErrors([invalid_field(pointer, "This is not your current password.",
                                           code="invalid_credentials")])
    _check_new_password(args["new_password"], "new_password")
    now = utcnow()
    account.password_hash = passwords.hash_password(args["new_password"])
    account.password_reset_token_digest = None
    account.password_reset_token_expires_at = None
    sessions.end_all(account.id, now, keep=principal.session_id)
    audit.record("password_change", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                 organization_id=account.organization_id)
    db.session.commit()
    return "", 204


def register(api):
    bp = api.blueprint
    bp.add_url_rule("/account/passwords/request_reset", "password_request_reset", request_reset, methods=["POST"])
    bp.add_url_rule("/account/passwords/reset", "password_reset", reset, methods=["POST"])
    bp.add_url_rule("/account/passwords/token_valid", "password_token_valid", token_valid, methods=["GET"])
    bp.add_url_rule("/account/passwords/change", "password_change", change, methods=["POST"])
