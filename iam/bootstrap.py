"""Creating administrators: the bootstrap admin from the environment, and the CLI's."""
import logging

from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from .auth import passwords
from .extensions import db
from .models import Account, AccountRole

log = logging.getLogger(__name__)


def admin_exists():
    return db.session.scalar(
        select(func.count()).select_from(AccountRole).where(AccountRole.name == "admin")) > 0


def create_admin(email, password):
    """An enabled password account with a global `admin` role (or that role added to it)."""
    account = db.session.scalars(select(Account).where(func.lower(Account.email) == email.lower())).one_or_none()
    if account is None:
        account = Account(email=email, account_type="local_account", auth_type="password", enabled=True)
        db.session.add(account)
    account.password_hash = passwords.hash_password(password)
    if not any(r.name == "admin" and r.scopes == {} for r in account.roles):
        account.roles.append(AccountRole(name="admin", scopes={}, info={"granted_by": "bootstrap"}))
    db.session.commit()
    return account


def bootstrap_admin(app):
    """When IAM_BOOTSTRAP_ADMIN_EMAIL/PASSWORD are set and no admin exists, create one.

    Runs at start-up; if the schema is not there yet (before `flask db upgrade`) it waits
    for the next start. Several processes starting at once race on the unique email: the
    losers' inserts fail and are ignored.
    """
    email = app.config.get("IAM_BOOTSTRAP_ADMIN_EMAIL")
    password = app.config.get("IAM_BOOTSTRAP_ADMIN_PASSWORD")
    if not (email and password):
        return None
    problem = passwords.policy_problem(password)
    if problem:
        log.error("bootstrap admin not created: IAM_BOOTSTRAP_ADMIN_PASSWORD is refused: %s", problem)
        return None
    with app.app_context():
        try:
            if not inspect(db.engine).has_table("account_roles"):
                log.warning("bootstrap admin skipped: run `flask --app wsgi db upgrade` first")
                return None
            if admin_exists():
                return None
            account = create_admin(email, password)
            log.info("bootstrap admin %s created", email)
            return account.id
        except IntegrityError:
            db.session.rollback()
            return None
        finally:
            db.session.remove()
