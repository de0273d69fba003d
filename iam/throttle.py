"""Per-client rate limits (Flask-Limiter) and the per-account login lock.

Client limits count per remote address in the storage named by IAM_RATELIMIT_STORAGE_URL
(in memory by default; `redis://...` so that several processes share their counters), and
answer 429 with Retry-After. Logins count failures only: a client that logs in correctly
is never slowed down.

The account lock claims an attempt with one conditional UPDATE before any password is
checked, so N parallel attempts against a limit of L check at most L passwords.
"""
from datetime import timedelta

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import and_, case, or_, update

from .extensions import db
from .models import Account


def _failed(response):
    return response.status_code in (400, 401, 422)


# endpoint -> (config key holding the limit, which responses count; None: all of them)
# [, the methods limited, when not every method of the endpoint])
ROUTE_LIMITS = {
    "iam.auth_login": ("IAM_LOGIN_RATE_LIMIT", _failed),
    "iam.auth_api_login": ("IAM_LOGIN_RATE_LIMIT", _failed),
    "iam.auth_refresh": ("IAM_REFRESH_RATE_LIMIT", _failed),
    "iam.password_request_reset": ("IAM_RESET_RATE_LIMIT", None),
    "iam.password_reset": ("IAM_RESET_RATE_LIMIT", _failed),
    "iam.password_token_valid": ("IAM_RESET_RATE_LIMIT", None),
    "iam.password_change": ("IAM_LOGIN_RATE_LIMIT", _failed),
    # PATCH /accounts/me checks current_password when the email changes; GET checks nothing.
    "iam.accounts_me": ("IAM_LOGIN_RATE_LIMIT", _failed, ["PATCH"]),
    "iam.invitations_accept": ("IAM_INVITATION_RATE_LIMIT", _failed),
    "iam.invitations_resend": ("IAM_INVITATION_RATE_LIMIT", None),
}


def init_app(app):
    """A limiter of this app's own, wrapping the throttled endpoints' view functions."""
    limiter = Limiter(get_remote_address, app=app, storage_uri=app.config["IAM_RATELIMIT_STORAGE_URL"],
                      headers_enabled=True, key_prefix="iam", strategy="moving-window")
    for endpoint, (setting, deduct_when, *methods) in ROUTE_LIMITS.items():
        view = app.view_functions[endpoint]
        limit = limiter.limit(lambda setting=setting: current_app.config[setting], deduct_when=deduct_when,
                              methods=methods[0] if methods else None)
        app.view_functions[endpoint] = limit(view)
    app.extensions["iam_limiter"] = limiter
    return limiter


def claim_login_attempt(account_id, now):
    """Count one attempt against the account; False when it is locked (no password may be checked)."""
    limit = current_app.config["IAM_LOGIN_MAX_FAILURES"]
    lock_over = and_(Account.locked_until.isnot(None), Account.locked_until <= now)
    claimed = db.session.execute(
        update(Account)
        .where(Account.id == account_id, or_(Account.failed_login_count < limit, lock_over))
        .values(failed_login_count=case((lock_over, 1), else_=Account.failed_login_count + 1),
                locked_until=case((lock_over, None), else_=Account.locked_until))
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()  # parallel attempts must see this claim before they check anything
    return bool(claimed)


def lock_if_exhausted(account_id, now):
    """After a failure: lock the account once its attempts are used up. True when it locked now."""
    seconds = current_app.config["IAM_LOGIN_LOCK_SECONDS"]
    return bool(db.session.execute(
        update(Account)
        .where(Account.id == account_id, Account.failed_login_count >= current_app.config["IAM_LOGIN_MAX_FAILURES"],
               Account.locked_until.is_(None))
        .values(locked_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    ).rowcount)
