"""Who is calling: the account behind a bearer token, through its session, with the roles valid now.

Every request re-reads the session, the account and (for API-key sessions) the key, so
ending a session, disabling, expiring or deleting an account, or revoking a key takes
effect on the very next request, however long the access token has left.

This runs on every request, so it reads plain rows, not ORM objects (which cost twice the
time): the session, its account, its API key and the account's roles in one statement, the
roles of the account's groups in a second. The principal's `account`, `session` and roles
are `Loaded` rows (their columns as attributes), for reading: a view that changes the
caller's account or session loads it through the ORM by id.
"""
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app, g, request
from sqlalchemy import bindparam, select

from ..extensions import db
from ..jsonapi.errors import unauthenticated
from ..jsonapi.rows import Loaded
from ..models import Account, AccountRole, AccountSession, ApiKey, Group, group_members, utcnow
from ..models.base import record_activity_by_id
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
    group_organization_id: int  # the group's organization: its roles reach inside it only


@dataclass
class Principal:
    account: Loaded                              # the caller's accounts row
    session: Loaded = None                       # its account_sessions row
    roles: list = field(default_factory=list)   # account_roles rows valid now, then GroupRoles

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


# The parts of the principal's row, in select order: every column of the session and the
# account (what the ORM would load; the account renders /accounts/me), the API key's
# validity, and every column of one role (a row per role, none when it has no roles).
_API_KEYS = ApiKey.__table__
_PARTS = (list(AccountSession.__table__.columns), list(Account.__table__.columns),
          [_API_KEYS.c.id, _API_KEYS.c.revoked_at, _API_KEYS.c.expires_at], list(AccountRole.__table__.columns))
_PRINCIPAL = (
    select(*(column for part in _PARTS for column in part))
    .select_from(AccountSession.__table__)
    .join(Account.__table__, Account.id == AccountSession.account_id)
    .outerjoin(_API_KEYS, _API_KEYS.c.id == AccountSession.api_key_id)
    .outerjoin(AccountRole.__table__, AccountRole.account_id == Account.id)
    .where(AccountSession.id == bindparam("session_id"), AccountSession.account_id == bindparam("account_id"))
    .order_by(AccountRole.id)
)
_GROUP_ROLES = (
    select(Group.id, Group.organization_id, Group.roles).join(group_members, group_members.c.group_id == Group.id)
    .where(group_members.c.account_id == bindparam("account_id")).order_by(Group.id)
)


_SESSION, _ACCOUNT, _KEY, _ROLE = range(4)
_STARTS = [sum(len(part) for part in _PARTS[:index]) for index in range(len(_PARTS))]


def _part(row, index):
    """One part of a _PRINCIPAL row as a Loaded row."""
    start, columns = _STARTS[index], _PARTS[index]
    return Loaded({column.key: value for column, value in zip(columns, row[start:start + len(columns)])})


def load_principal(account_id, session_id, now=None):
    """The principal for a live session of an account that may authenticate now, else None.

    The validity rules are the models' own methods, applied to the rows read (they read
    only columns)."""
    now = now or utcnow()
    rows = db.session.execute(_PRINCIPAL, {"session_id": session_id, "account_id": account_id}).all()
    if not rows:
        return None
    session, account, key = (_part(rows[0], index) for index in (_SESSION, _ACCOUNT, _KEY))
    if not AccountSession.is_active(session, now, idle_timeout()) or not Account.is_active(account, now):
        return None
    if key.id is not None and not ApiKey.is_usable(key, now):
        return None
    roles = [role for role in (_part(row, _ROLE) for row in rows)
             if role.id is not None and AccountRole.is_valid(role, now)]
    roles += [GroupRole(role["name"], role.get("scopes") or {}, group_id, group_org)
              for group_id, group_org, group_roles in db.session.execute(_GROUP_ROLES, {"account_id": account_id})
              for role in (group_roles or [])]
    if session.last_used_at is None or now - session.last_used_at > LAST_USED_RESOLUTION:
        # Its own transaction (SQLite cannot turn a read transaction into a write once another
        # writer has committed), and no version check: parallel requests of one session all
        # record their use, at most once a minute, and none fails another.
        db.session.commit()
        version = record_activity_by_id(db.session, AccountSession, session.id, now, last_used_at=now)
        db.session.commit()
        if version is not None:
            session.last_used_at, session.updated_at, session.version = now, now, version
    return Principal(account, session, roles)


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
