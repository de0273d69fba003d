"""Creating administrators: the bootstrap admin from the environment, and the CLI's.

Every process that starts (each gunicorn worker imports the app) runs the bootstrap, and
they all start at once on a new database. Checking "is there an admin?" and then adding one
is made safe by doing both in one transaction that holds a lock of the database's own:
`pg_advisory_xact_lock` on PostgreSQL, the write lock (BEGIN IMMEDIATE, waiting up to the
busy timeout) on SQLite. The first process creates the admin; the others wait their turn,
see it, and add nothing.
"""
import logging
from contextlib import contextmanager

from sqlalchemy import func, inspect, select

from .auth import passwords
from .extensions import db
from .jsonapi.errors import describe_database_error
from .models import Account, AccountRole

log = logging.getLogger(__name__)

# The PostgreSQL advisory lock held while an admin is created (any fixed number; "IAMADMIN").
ADMIN_LOCK_KEY = 0x49414D41444D494E & 0x7FFFFFFFFFFFFFFF


def admin_exists():
    return db.session.scalar(
        select(func.count()).select_from(AccountRole).where(AccountRole.name == "admin")) > 0


@contextmanager
def _admin_lock():
    """A transaction holding the admin-creation lock, begun afresh: one process at a time gets
    here, and what it reads inside stays true until it commits."""
    db.session.rollback()  # the lock must come first in its transaction, before any read
    dialect = db.session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite has no row locks, and a deferred transaction that has read cannot wait for the
        # write lock (it fails at once with "database is locked"). Work outside a request (the
        # bootstrap, the CLI) begins IMMEDIATE (iam's `begin` listener), waiting up to the busy
        # timeout for the write lock: beginning the transaction takes the lock.
        db.session.connection()
    elif dialect == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(ADMIN_LOCK_KEY)))
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise


def _grant_admin(email, password_hash):
    """An enabled password account with a global `admin` role (or that role added to it); commits."""
    account = db.session.scalars(select(Account).where(func.lower(Account.email) == email.lower())).one_or_none()
    if account is None:
        account = Account(email=email, account_type="local_account", auth_type="password", enabled=True)
        db.session.add(account)
    account.password_hash = password_hash
    if not any(r.name == "admin" and r.scopes == {} for r in account.roles):
        account.roles.append(AccountRole(name="admin", scopes={}, info={"granted_by": "bootstrap"}))
    db.session.commit()
    return account


def create_admin(email, password):
    """An enabled password account with a global `admin` role (or that role added to it)."""
    password_hash = passwords.hash_password(password)  # outside the lock: it takes a while
    with _admin_lock():
        return _grant_admin(email, password_hash)


def bootstrap_admin(app):
    """When IAM_BOOTSTRAP_ADMIN_EMAIL/PASSWORD are set and no admin exists, create one.

    Runs at start-up in every process; exactly one of them creates the admin (see above). If
    the schema is not there yet (before `flask db upgrade`) it waits for the next start. It
    never raises: the admin is a convenience and the server must come up without it, so any
    failure is one logged line. Returns the new account's id, or None.
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
            # Every start but the first ends here, with two reads and no hashing. (On SQLite the
            # read's transaction holds the write lock for a moment: work outside a request begins
            # IMMEDIATE.)
            if not inspect(db.engine).has_table("account_roles"):
                log.warning("bootstrap admin skipped: run `flask --app wsgi db upgrade` first")
                return None
            found = admin_exists()
            db.session.rollback()  # hold nothing while hashing
            if found:
                log.debug("bootstrap admin: an admin exists already")
                return None
            password_hash = passwords.hash_password(password)  # outside the lock: it takes a while
            with _admin_lock():
                if admin_exists():  # another process was first
                    db.session.rollback()
                    log.debug("bootstrap admin: another process created it")
                    return None
                account_id = _grant_admin(email, password_hash).id
            log.info("bootstrap admin %s created", email)
            return account_id
        except Exception as error:  # noqa: BLE001 - a failed bootstrap must not stop the server
            log.error("bootstrap admin %s not created, the server starts without it (%s); "
                      "`flask --app wsgi iam create-admin` makes one", email, describe_database_error(error))
            try:
                db.session.rollback()
            except Exception:  # noqa: BLE001 - the connection is gone: remove() drops it
                pass
            return None
        finally:
            try:
                db.session.remove()
                url = db.engine.url
                if url.database not in (None, "", ":memory:") and "mode=memory" not in str(url):
                    # No pooled connection outlives start-up: with `gunicorn --preload` this runs
                    # in the master, and forked workers must not share its connections.
                    db.engine.dispose()
            except Exception:  # noqa: BLE001 - nothing may stop the start
                pass
