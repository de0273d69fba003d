"""Who is calling: the account behind a bearer token, through its session, with the roles valid now.

Every request re-reads the session, the account and (for API-key sessions) the key, so
ending a session, disabling, expiring or deleting an account, or revoking a key takes
effect on the very next request, however long the access token has left.

This runs on every request, so it costs one round trip and reads plain rows, not ORM objects
(which cost twice the time): the session, its account, its API key, the account's roles and
its groups' roles in one statement. The principal's `account`, `session` and roles
are `Loaded` rows (their columns as attributes), for reading: a view that changes the
caller's account or session loads it through the ORM by id.
"""
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app, g, request
from sqlalchemy import Integer, bindparam, cast, literal_column, null, select, true, union_all

from ..extensions import db
from ..jsonapi.errors import JsonApiError, unauthenticated
from ..jsonapi.connections import connection_for
from ..jsonapi.driver import Prebuilt
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
    account: Loaded                              # the caller's accounts row (no secret column)
    session: Loaded = None                       # its account_sessions row (the columns _PRINCIPAL reads)
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


# The principal in one statement (one round trip on every request): the session, its
# account and its API key's validity, joined to every grant of the account, a row per grant:
# each direct role and each group it belongs to (the group's id, organization and roles), as
# a UNION ALL of the two kinds with the other kind's columns null. An account with no grant
# gives one row whose grant is all nulls.
#
# Only the columns something reads: the driver builds an object per result column on every
# execution, so each one costs on every request. The account's are those /accounts/me renders
# and its ETag (no password hash, no token digest: nothing secret is read to authenticate);
# the session's are those its validity, last-use bookkeeping and read-only flag need.
_SESSIONS, _ACCOUNTS, _API_KEYS, _ROLES, _GROUPS = (AccountSession.__table__, Account.__table__, ApiKey.__table__,
                                                   AccountRole.__table__, Group.__table__)
_SESSION_COLUMNS = [_SESSIONS.c[name] for name in ("id", "account_id", "api_key_id", "read_only", "last_used_at",
                                                   "expires_at", "revoked_at", "updated_at", "version", "mfa_at",
                                                   "enrollment_only")]
_ACCOUNT_COLUMNS = [_ACCOUNTS.c[name] for name in (
    "id", "email", "account_type", "auth_type", "enabled", "expires_at", "person_id", "organization_id",
    "preferences", "consent_given_at", "last_login_at", "created_at", "updated_at", "version")] + [
    Account.sso_linked.expression.label("sso_linked"), Account.mfa_enabled.expression.label("mfa_enabled")]
_ROLE_COLUMNS = [_ROLES.c[name] for name in ("id", "name", "scopes", "not_before", "expires_at",
                                             "scope_organization_id")]
_GROUP_COLUMNS = [_GROUPS.c.id, _GROUPS.c.organization_id, _GROUPS.c.roles]
_DIRECT, _GROUP = 1, 2


def _nulls(columns, prefix):
    return [cast(null(), column.type).label(f"{prefix}{column.key}") for column in columns]


_GRANTS = union_all(
    select(literal_column(str(_DIRECT), Integer).label("kind"), *(c.label(f"r_{c.key}") for c in _ROLE_COLUMNS), *_nulls(_GROUP_COLUMNS, "g_"))
    .where(_ROLES.c.account_id == bindparam("account_id")),
    select(literal_column(str(_GROUP), Integer), *_nulls(_ROLE_COLUMNS, "r_"), *(c.label(f"g_{c.key}") for c in _GROUP_COLUMNS))
    .select_from(_GROUPS).join(group_members, group_members.c.group_id == _GROUPS.c.id)
    .where(group_members.c.account_id == bindparam("account_id")),
).subquery("grants")
_PARTS = (_SESSION_COLUMNS, _ACCOUNT_COLUMNS, [_API_KEYS.c.id, _API_KEYS.c.revoked_at, _API_KEYS.c.expires_at],
          list(_GRANTS.c))
_PRINCIPAL = Prebuilt(lambda _: (
    select(*(column for part in _PARTS for column in part))
    .select_from(_SESSIONS)
    .join(_ACCOUNTS, _ACCOUNTS.c.id == _SESSIONS.c.account_id)
    .outerjoin(_API_KEYS, _API_KEYS.c.id == _SESSIONS.c.api_key_id)
    .outerjoin(_GRANTS, true())
    .where(_SESSIONS.c.id == bindparam("session_id"), _SESSIONS.c.account_id == bindparam("account_id"))
    .order_by(_GRANTS.c.kind, _GRANTS.c.r_id, _GRANTS.c.g_id)
))

_SESSION, _ACCOUNT, _KEY, _GRANT = range(4)
_STARTS = [sum(len(part) for part in _PARTS[:index]) for index in range(len(_PARTS))]
_KIND = _STARTS[_GRANT]
_ROLE_SLICE = slice(_KIND + 1, _KIND + 1 + len(_ROLE_COLUMNS))
_ROLE_KEYS = [column.key for column in _ROLE_COLUMNS]
_GROUP_START = _ROLE_SLICE.stop


_PART_KEYS = [tuple(column.key for column in part) for part in _PARTS]
_PART_SLICES = [slice(start, start + len(part)) for start, part in zip(_STARTS, _PARTS)]


def _part(row, index):
    """The session, account or key part of a _PRINCIPAL row as a Loaded row."""
    return Loaded(dict(zip(_PART_KEYS[index], row[_PART_SLICES[index]])))


def _grants(rows, now):
    """The roles valid now: the direct roles (Loaded account_roles rows), then the groups' roles."""
    direct, through_groups = [], []
    for row in rows:
        kind = row[_KIND]
        if kind == _DIRECT:
            role = Loaded(dict(zip(_ROLE_KEYS, row[_ROLE_SLICE])))
            if AccountRole.is_valid(role, now):
                direct.append(role)
        elif kind == _GROUP:
            group_id, group_org, group_roles = row[_GROUP_START:_GROUP_START + 3]
            through_groups += [GroupRole(role["name"], role.get("scopes") or {}, group_id, group_org)
                               for role in (group_roles or [])]
    return direct + through_groups


def load_principal(account_id, session_id, now=None):
    """The principal for a live session of an account that may authenticate now, else None.

    The validity rules are the models' own methods, applied to the rows read (they read
    only columns)."""
    now = now or utcnow()
    # Built once, run on the driver (iam/jsonapi/driver.py): read by position, no ORM.
    rows = _PRINCIPAL.rows(connection_for(db.session), {"session_id": session_id, "account_id": account_id})
    if not rows:
        return None
    session, account, key = (_part(rows[0], index) for index in (_SESSION, _ACCOUNT, _KEY))
    if not AccountSession.is_active(session, now, idle_timeout()) or not Account.is_active(account, now):
        return None
    if key.id is not None and not ApiKey.is_usable(key, now):
        return None
    roles = _grants(rows, now)
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
    if principal.session.enrollment_only and not _enrollment_allows():
        raise JsonApiError(403, "mfa_enrollment_required", "Forbidden",
                           "Your organization requires a second factor: enrol one (POST /mfa_factors, then "
                           "POST /mfa_factors/:id/verify) before anything else.")
    g.principal = principal
    return principal


# What a session limited to enrolling a second factor may do (contract section 9): read its
# account, list, create and verify its factors, log out. Endpoint -> methods.
ENROLLMENT_ENDPOINTS = {
    "iam.accounts_me": {"GET"},
    "iam.mfa_factors_collection": {"GET", "POST"},
    "iam.mfa_factors_item": {"GET"},
    "iam.mfa_factors_verify": {"POST"},
    "iam.auth_logout": {"POST"},
}


def _enrollment_allows():
    return request.method in ENROLLMENT_ENDPOINTS.get(request.endpoint, ())
