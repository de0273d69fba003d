"""Self-service email change, confirmed from the new mailbox.

`PATCH /accounts/me` with `email` and `current_password` changes nothing yet: it stores the
new address as pending with a token (256 random bits, kept as its SHA-256 digest, valid for
IAM_EMAIL_CHANGE_TTL seconds; a newer request replaces it) and mails the new address a
link, and the old address a notice. `POST /account/email/confirm {"token"}` makes the change
(one conditional UPDATE, so a token works once) and tells the old address.

The answer to the request is the same whether or not the new address already has an
account, so it is no oracle for which addresses exist: in that case the new mailbox gets a
notice instead of a link (its owner learns nothing new), and confirming is impossible.
"""
import secrets
from datetime import timedelta

from flask import current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select, update

from .. import audit, mail
from ..extensions import db
from ..jsonapi.errors import conflict
from ..jsonapi.media import check_accept
from ..jsonapi.schema import format_timestamp
from ..models import Account, utcnow
from ..resources.common import digest
from .password_views import invalid_token
from .views import parse_auth_body


class ConfirmSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=256))


def _taken(email, account_id):
    return db.session.scalar(select(Account.id).where(func.lower(Account.email) == email.lower(),
                                                      Account.id != account_id)) is not None


def request_change(account, new_email, now):
    """Make `new_email` the account's pending address (in the caller's transaction).

    Returns the change as the answer describes it, and the mails to send once committed."""
    raw = secrets.token_urlsafe(32)
    account.pending_email = new_email
    account.email_change_token_digest = digest(raw)
    account.email_change_expires_at = now + timedelta(seconds=current_app.config["IAM_EMAIL_CHANGE_TTL"])
    old_email = account.email
    if _taken(new_email, account.id):
        to_new = ("Someone asked to move an account of this server to this address, which already has an "
                  "account. Nothing was changed. If it was you, sign in with this address instead.")
    else:
        template = current_app.config.get("IAM_EMAIL_CHANGE_URL")
        action = (f"Open this link to confirm it:\n\n{template.replace('{token}', raw)}" if template else
                  f"Confirm it by sending this token to POST /api/v3/iam/account/email/confirm:\n\n{raw}")
        to_new = (f"The account {old_email} asked to use this address from now on.\n\n{action}\n\n"
                  f"It works once, until {account.email_change_expires_at:%Y-%m-%d %H:%M} UTC. "
                  "If you did not ask for this, ignore this message.")
    to_old = (f"Someone signed in as {old_email} with its password asked to change its email to {new_email}. "
              "It changes only once that address confirms it. If this was not you, change your password now: "
              "someone else knows it.")
    audit.record("email_change_requested", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                 organization_id=account.organization_id)

    def send():
        mail.send(new_email, "Confirm your new email address", to_new)
        mail.send(old_email, "Your account's email is about to change", to_old)

    change = {"status": "pending", "email": new_email, "expires_at": format_timestamp(account.email_change_expires_at)}
    return change, send


def confirm():
    """POST /account/email/confirm: the pending address becomes the account's email, once."""
    check_accept()
    args = parse_auth_body(ConfirmSchema)
    now = utcnow()
    token_digest = digest(args["token"])
    account = db.session.scalars(select(Account).where(Account.email_change_token_digest == token_digest)
                                 ).one_or_none()
    if account is None or not account.is_active(now) or account.email_change_expires_at is None \
            or account.email_change_expires_at <= now:
        raise invalid_token("confirmation")
    old_email, new_email = account.email, account.pending_email
    if _taken(new_email, account.id):
        raise conflict("This address has an account already.", code="not_unique")
    claimed = db.session.execute(
        update(Account)
        .where(Account.id == account.id, Account.email_change_token_digest == token_digest,
               Account.email_change_expires_at > now)
        # A reset link mailed to the old address must not outlive the address.
        .values(email=new_email, pending_email=None, email_change_token_digest=None, email_change_expires_at=None,
                password_reset_token_digest=None, password_reset_token_expires_at=None,
                email_verified_at=now, version=Account.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise invalid_token("confirmation")
    audit.record("email_changed", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                 organization_id=account.organization_id,
                 changes={"before": {"email": old_email}, "after": {"email": new_email}})
    db.session.commit()  # a unique-email race ends here as a 409 (the error handlers' IntegrityError)
    mail.send(old_email, "Your account's email has changed",
              f"The email of your account is now {new_email} (it was {old_email}). "
              "If this was not you, tell your administrator at once.")
    return "", 204


def register(api):
    api.blueprint.add_url_rule("/account/email/confirm", "email_change_confirm", confirm, methods=["POST"])
