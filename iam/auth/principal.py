"""Who is calling: the account behind a bearer token, through its session, with the roles valid now.

Every request re-reads the session, the account and (for API-key sessions) the key, so
ending a session, disabling, expiring or deleting an account, or revoking a key takes
effect on the very next request, however long the access token has left.
"""
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app, g, request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..jsonapi.errors import unauthenticated
from ..models import Account, AccountSession, utcnow
from ..models.base import record_activity
from .tokens import InvalidToken, decode_access_token

# last_used_at is a hint for people reviewing their sessions, not an audit record:
# refreshing it at most once a minute keeps reads from turning into writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class GroupRole:
    """A role held through membership of a group (valid while a member)."""

    name: str
    scopes: dict
    group_id: int


def effective_roles(account, now):
    """The roles an account holds now: its own valid ones and those of its groups."""
    direct = [r for r in account.roles if r.is_valid(now)]
    through_groups = [GroupRole(role["name"], role.get("scopes") or {}, group.id)
                      for group in account.groups for role in (group.roles or [])]
    return direct + through_groups


@dataclass
class Principal:
    account: Account
    session: AccountSession = None
    roles: list = field(default_factory=list)   # AccountRole rows valid now

    @property
    def account_id(self):
        return self.account.id

    @property
    def session_id(self):
        return self.session.id if self.session else None

    @property
    def read_only(self):
        return bool(self.session and self.session.read_only)

    def has_role(self, name, scopes=None):
        return any(r.name == name and (scopes is None or r.scopes == scopes) for r in self.roles)

    @property
    def is_admin(self):
        """A global admin: role `admin` with empty scopes, valid now."""
        return self.has_role("admin", {})


def idle_timeout():
    return timedelta(seconds=current_app.config["IAM_SESSION_IDLE_TIMEOUT"])


def load_principal(account_id, session_id, now=None):
    """The principal for a live session of an account that may authenticate now, else None."""
    now = now or utcnow()
    session = db.session.scalars(
        select(AccountSession).where(AccountSession.id == session_id, AccountSession.account_id == account_id)
        .options(joinedload(AccountSession.account).joinedload(Account.roles),
                 joinedload(AccountSession.account).selectinload(Account.groups),
                 joinedload(AccountSession.api_key))
    ).unique().one_or_none()
    if session is None or not session.is_active(now, idle_timeout()) or not session.account.is_active(now):
        return None
    if session.api_key is not None and not session.api_key.is_usable(now):
        return None
    if session.last_used_at is None or now - session.last_used_at > LAST_USED_RESOLUTION:
        # Its own transaction (SQLite cannot turn a read transaction into a write once another
        # writer has committed), and no version check: parallel requests of one session all
        # record their use, at most once a minute, and none fails another.
        db.session.commit()
        record_activity(db.session, session, now, last_used_at=now)
        db.session.commit()
    account = session.account
    return Principal(account, session, effective_roles(account, now))


def authenticate():
    """The request's principal from `Authorization: Bearer`, or a 401."""
    if "principal" in g:
        return g.principal
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("Send Authorization: Bearer <token> (get one from POST /auth/login).")
    try:
        claims = decode_access_token(token.strip())
    except InvalidToken:
        raise unauthenticated("The access token is invalid or has expired.") from None
    principal = load_principal(int(claims["sub"]), int(claims["sid"]))
    if principal is None:
        raise unauthenticated("The access token is invalid or has expired.")
    g.principal = principal
    return principal
