"""The baseline: the benchmark's documents from a plain WSGI callable, hand-written SQL and orjson.

No Flask, no ORM, no marshmallow: what a careful person would write by hand to answer the
benchmark's requests, to show what the same work costs without the framework. It serves

    GET  /api/v3/iam/accounts        page[number|size], sort, count, included=roles,person,organization,
                                     fields[accounts], filter[email__match|email|enabled|organization_id|id|
                                     role_name|ou_accounts]
    GET  /api/v3/iam/accounts/:id    included, fields[accounts]
    GET  /api/v3/iam/accounts/me
    POST /api/v3/iam/auth/login

and answers each with the document our server gives (same members, linkage, links,
included, meta, jsonapi), doing the same work for it:

- every request checks the bearer JWT (HS256, the app's secret and required claims) and then
  reads the session, its account, the account's valid roles and its groups' roles in one
  query: the session must be live (not revoked, not past its lifetime, not idle too long),
  the account enabled and unexpired, an API key unrevoked; `last_used_at` is refreshed at
  most once a minute, as ours does. Only callers holding the global `admin` role are served
  (the benchmark runs as the bench admin); anyone else gets a 403.
- paging, sorting and every filter run in SQL, with the same predicates as ours (the same
  ILIKE, the same EXISTS for role_name and ou_accounts, the same count(*)).
- a login finds the account by lower(email), claims an attempt with the same conditional
  UPDATE, verifies the password with argon2-cffi (the app's parameters), counts failures per
  client address in memory (as the app's in-memory rate limit does), and on success, in
  one transaction, resets the account's counters, inserts the session, a refresh token
  (stored as its SHA-256 digest) and the audit event, then issues the same JWT.

Run with the project's own gunicorn settings (same workers, threads, keep-alive):
`IAM_DATABASE_URL=... IAM_SECRET_KEY=... gunicorn -c gunicorn.conf.py bench.baseline:application`.
Each gunicorn thread keeps one psycopg connection (autocommit; a login is one transaction).
"""
import base64
import codecs
import hashlib
import os
import re
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections import defaultdict, deque
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote, urlencode

import jwt
import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg.types.string import TextLoader
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from . import API_PREFIX, libpq_url

SECRET = os.environ.get("IAM_SECRET_KEY", "")
if len(SECRET) < 32:
    raise RuntimeError("the baseline needs IAM_SECRET_KEY (the app's, at least 32 characters)")
DSN = libpq_url(os.environ.get("IAM_DATABASE_URL", ""))
if not DSN.startswith("postgresql://"):
    raise RuntimeError("the baseline needs IAM_DATABASE_URL pointing at PostgreSQL")


def _int_env(name, default):
    raw = os.environ.get(name)
    return int(raw) if raw else default


ACCESS_TTL = _int_env("IAM_ACCESS_TOKEN_TTL", 900)
REFRESH_TTL = _int_env("IAM_REFRESH_TOKEN_TTL", 14 * 24 * 3600)
IDLE_TIMEOUT = timedelta(seconds=_int_env("IAM_SESSION_IDLE_TIMEOUT", 24 * 3600))
MAX_FAILURES = _int_env("IAM_LOGIN_MAX_FAILURES", 5)
LOCK_SECONDS = _int_env("IAM_LOGIN_LOCK_SECONDS", 900)
LAST_USED_RESOLUTION = timedelta(seconds=60)
# The app's default IAM_LOGIN_RATE_LIMIT ("20 per 10 minutes", failures only, per address).
LOGIN_FAILURES_ALLOWED, LOGIN_WINDOW = 20, 600.0
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE = 1000
JSONAPI = {"version": "1.1"}
MEDIA_TYPE = "application/vnd.api+json"
UTC = timezone.utc

# The app's Argon2id parameters (iam/auth/passwords.py).
hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)
_DUMMY_HASH = hasher.hash("not-a-real-password-just-for-timing")


def fmt(dt):
    """A timestamp as ours renders it: UTC, microseconds, Z."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts(dt):
    """fmt() for the connection's datetimes, which are UTC already (TimeZone=UTC); None stays None."""
    return None if dt is None else f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}Z"


def day(value):
    return None if value is None else value.isoformat()


# ---------------------------------------------------------------- database

_local = threading.local()


def connection():
    """This thread's connection: autocommit, UTC, JSONB columns as their JSON text (embedded as is)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(DSN, autocommit=True, options="-c TimeZone=UTC")
        set_json_loads(orjson.loads, conn)
        conn.adapters.register_loader("jsonb", TextLoader)
        _local.conn = conn
    return conn


def query(sql, params=()):
    return connection().execute(sql, params).fetchall()


# ---------------------------------------------------------------- errors and responses

class HttpError(Exception):
    def __init__(self, status, code, title, detail, parameter=None, headers=None):
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.parameter, self.headers = parameter, headers or []

    def document(self):
        error = {"status": str(self.status), "code": self.code, "title": self.title, "detail": self.detail}
        if self.parameter:
            error["source"] = {"parameter": self.parameter}
        return {"errors": [error], "jsonapi": JSONAPI}


STATUS_TEXT = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
               404: "404 Not Found", 405: "405 Method Not Allowed", 415: "415 Unsupported Media Type",
               422: "422 Unprocessable Entity", 429: "429 Too Many Requests",
               500: "500 Internal Server Error"}


def bad_parameter(name, detail):
    return HttpError(400, "invalid_parameter", "Bad request", detail, parameter=name)


def unauthenticated(detail="The access token is invalid or has expired."):
    return HttpError(401, "unauthenticated", "Unauthenticated", detail,
                     headers=[("WWW-Authenticate", 'Bearer realm="iam"')])


# ---------------------------------------------------------------- URLs (as werkzeug's request.url renders them)

def _quote_error(error):
    return "".join(f"%{byte:02X}" for byte in error.object[error.start:error.end]), error.end


codecs.register_error("bench.url_quote", _quote_error)
_ALWAYS_UNSAFE = bytes((*range(0x21), 0x25, 0x7F)).decode()


def _unquote_except(chars):
    pattern = re.compile("((?:%(?:" + "|".join(f"{ord(c):02X}" for c in sorted(chars)) + "))+)", re.I)

    def unquote_part(value):
        parts = iter(pattern.split(value))
        out = []
        for part in parts:
            out.append(unquote(part, "utf-8", "bench.url_quote"))
            out.append(next(parts, ""))
        return "".join(out)

    return unquote_part


_unquote_query = _unquote_except(_ALWAYS_UNSAFE + "&=+#")
_unquote_path = _unquote_except(_ALWAYS_UNSAFE + "/?#")
_PLAIN_QUERY = re.compile(r"^[A-Za-z0-9!$&'()*+,/:;=?@\-._~\[\]]*$")


def request_urls(environ):
    """(`http://host`, base_url without the query, the URL with it as a URI), as the app renders them:
    werkzeug's request.url (an IRI) through iri_to_uri."""
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    origin = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    base_url = origin + _unquote_path(quote(path, safe="!$&'()*+,/:;=@%"))
    qs = environ.get("QUERY_STRING", "")
    if not qs:
        return origin, base_url, base_url
    if not _PLAIN_QUERY.match(qs):
        qs = _unquote_query(quote(qs.encode("latin-1"), safe="!$&'()*+,/:;=?@%"))
    return origin, base_url, base_url + "?" + quote(qs, safe="%!$&'()*+,/:;=?@")


# ---------------------------------------------------------------- authentication

PRINCIPAL_SQL = """
SELECT s.id, s.last_used_at, s.expires_at, s.revoked_at, s.api_key_id, k.revoked_at, k.expires_at, a.expires_at,
       a.id, a.email, a.account_type, a.auth_type, a.enabled, a.expires_at, a.person_id, a.organization_id,
       a.preferences, a.consent_given_at, a.last_login_at,
       EXISTS (SELECT 1 FROM account_identities i WHERE i.account_id = a.id),
       EXISTS (SELECT 1 FROM mfa_factors f WHERE f.account_id = a.id AND f.status = 'active'
               AND f.kind IN ('totp', 'webauthn')), a.created_at, a.updated_at, a.version,
       (SELECT coalesce(json_agg(json_build_array(r.id, r.name, r.scopes) ORDER BY r.id), '[]')
          FROM account_roles r
         WHERE r.account_id = a.id AND (r.not_before IS NULL OR r.not_before <= %(now)s)
           AND (r.expires_at IS NULL OR r.expires_at > %(now)s)),
       (SELECT coalesce(json_agg(json_build_array(g.id, g.roles) ORDER BY g.id), '[]')
          FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.account_id = a.id)
  FROM account_sessions s JOIN accounts a ON a.id = s.account_id LEFT JOIN api_keys k ON k.id = s.api_key_id
 WHERE s.id = %(sid)s AND s.account_id = %(sub)s
"""


class Principal:
    __slots__ = ("account_id", "account_row", "roles", "is_admin")

    def __init__(self, account_id, account_row, roles):
        self.account_id = account_id
        self.account_row = account_row   # id, the ACCOUNT_COLUMNS values (as read), version
        self.roles = roles               # effective roles, as /accounts/me's meta lists them
        self.is_admin = any(r["name"] == "admin" and r["scopes"] == {} for r in roles)


def authenticate(environ, now):
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("Send Authorization: Bearer <token> (get one from POST /auth/login).")
    try:
        claims = jwt.decode(token.strip(), SECRET, algorithms=["HS256"], issuer="iam",
                            options={"require": ["exp", "iat", "sub", "sid", "jti", "typ", "iss"]})
    except jwt.PyJWTError:
        raise unauthenticated() from None
    if claims.get("typ") != "access":
        raise unauthenticated()
    for claim in ("sub", "sid"):
        value = claims.get(claim)
        if not isinstance(value, str) or not value.isdigit() or int(value) >= 2 ** 31:
            raise unauthenticated()
    rows = query(PRINCIPAL_SQL, {"now": now, "sid": int(claims["sid"]), "sub": int(claims["sub"])})
    if not rows:
        raise unauthenticated()
    sid, last_used, s_expires, s_revoked, key_id, k_revoked, k_expires, a_expires, *rest = rows[0]
    roles_json, groups_json = rest[-2], rest[-1]
    account_row = rest[:-2]  # id, the ACCOUNT_COLUMNS, version
    account_id, enabled = account_row[0], account_row[4]
    if s_revoked is not None or s_expires <= now or (last_used is not None and now - last_used >= IDLE_TIMEOUT):
        raise unauthenticated()
    if not enabled or (a_expires is not None and a_expires <= now):
        raise unauthenticated()
    if key_id is not None and (k_revoked is not None or (k_expires is not None and k_expires <= now)):
        raise unauthenticated()
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        query("UPDATE account_sessions SET last_used_at = %s, updated_at = %s, version = version + 1 "
              "WHERE id = %s RETURNING id", (now, now, sid))
    roles = [{"name": name, "scopes": scopes or {}, "source": "direct", "role_id": str(role_id)}
             for role_id, name, scopes in roles_json]
    roles += [{"name": role["name"], "scopes": role.get("scopes") or {}, "source": "group", "group_id": str(group_id)}
              for group_id, group_roles in groups_json for role in (group_roles or [])]
    return Principal(account_id, account_row, roles)


def require_admin(principal):
    if not principal.is_admin:
        raise HttpError(403, "forbidden", "Forbidden", "The baseline serves administrators only.")


# ---------------------------------------------------------------- rendering

# (attribute, SQL, conversion): JSONB columns come as their JSON text and are embedded as they are.
ACCOUNT_COLUMNS = (
    ("email", "a.email", None), ("account_type", "a.account_type", None), ("auth_type", "a.auth_type", None),
    ("enabled", "a.enabled", None), ("expires_at", "a.expires_at", ts), ("person_id", "a.person_id", None),
    ("organization_id", "a.organization_id", None), ("preferences", "a.preferences", orjson.Fragment),
    ("consent_given_at", "a.consent_given_at", ts), ("last_login_at", "a.last_login_at", ts),
    ("sso_linked", "EXISTS (SELECT 1 FROM account_identities i WHERE i.account_id = a.id)", None),
    ("mfa_enabled", "EXISTS (SELECT 1 FROM mfa_factors f WHERE f.account_id = a.id AND f.status = 'active' "
                    "AND f.kind IN ('totp', 'webauthn'))", None),
    ("created_at", "a.created_at", ts), ("updated_at", "a.updated_at", ts),
)
ACCOUNT_RELATIONSHIPS = ("roles", "person", "organization", "sessions", "api_keys", "groups")
INCLUDABLE = ("roles", "person", "organization")
ACCOUNT_FIELDS = frozenset(name for name, _, _ in ACCOUNT_COLUMNS) | frozenset(ACCOUNT_RELATIONSHIPS)

ROLE_SQL = """SELECT r.id, r.account_id, r.name, r.scopes, r.info, r.not_before, r.expires_at, r.created_at,
  r.updated_at, r.scope_organization_id FROM account_roles r WHERE r.account_id = ANY(%s) ORDER BY r.id"""
PERSON_SQL = """SELECT p.id, p.organization_id, p.first_name, p.middle_name, p.last_name, p.picture_url, p.gender,
  p.birthday, p.secondary_email, p.contact_number, p.physical_address, p.facets, p.organizational_unit_id,
  p.created_at, p.updated_at FROM people p WHERE p.id = ANY(%s)"""
ORGANIZATION_SQL = """SELECT o.id, o.name, o.slug, o.enabled, o.quota_limit, o.quota_usage, o.policies, o.created_at,
  o.updated_at
  FROM organizations o WHERE o.id = ANY(%s)"""


def _links(base, type_, id_, name):
    own = f"{base}/{type_}/{id_}"
    return {"self": f"{own}/relationships/{name}", "related": f"{own}/{name}"}


def _to_one(type_, id_):
    return None if id_ is None else {"type": type_, "id": str(id_)}


class Renderer:
    """Renders accounts (and what they include) for one request."""

    def __init__(self, base, fields, include):
        self.base = base
        self.fields = fields            # None, or the set of account fields asked for
        self.include = include          # subset of INCLUDABLE
        names = [c for c in ACCOUNT_COLUMNS if fields is None or c[0] in fields]
        self.attr_names = [name for name, _, _ in names]
        self.conversions = [(i, conv) for i, (_, _, conv) in enumerate(names) if conv is not None]
        self.relationships = [r for r in ACCOUNT_RELATIONSHIPS if fields is None or r in fields]
        # id, the chosen attributes, then the keys linkage and includes need, then the version (ETag).
        self.select = ", ".join(["a.id", *(sql for _, sql, _ in names), "a.person_id", "a.organization_id",
                                 "a.version"])

    def account(self, row, roles=None):
        id_ = row[0]
        values = list(row[1:1 + len(self.attr_names)])
        for i, conv in self.conversions:
            if values[i] is not None:
                values[i] = conv(values[i])
        person_id, organization_id = row[-3], row[-2]
        attributes = dict(zip(self.attr_names, values))
        sid = str(id_)
        item = {"type": "accounts", "id": sid}
        if attributes:
            item["attributes"] = attributes
        if self.relationships:
            relationships = {}
            for name in self.relationships:
                rel = {"links": _links(self.base, "accounts", sid, name)}
                if name == "person":
                    rel["data"] = _to_one("people", person_id)
                elif name == "organization":
                    rel["data"] = _to_one("organizations", organization_id)
                elif name == "roles" and roles is not None:
                    rel["data"] = [{"type": "account_roles", "id": str(role[0])} for role in roles]
                relationships[name] = rel
            item["relationships"] = relationships
        item["links"] = {"self": f"{self.base}/accounts/{sid}"}
        return item

    def role(self, row):
        id_, account_id, name, scopes, info, not_before, expires_at, created_at, updated_at, scope_org = row
        sid = str(id_)
        return {"type": "account_roles", "id": sid, "attributes": {
            "name": name, "account_id": account_id, "scopes": orjson.Fragment(scopes), "info": orjson.Fragment(info),
            "not_before": ts(not_before), "expires_at": ts(expires_at), "created_at": ts(created_at),
            "updated_at": ts(updated_at), "scope_organization_id": scope_org},
            "relationships": {"account": {"links": _links(self.base, "account_roles", sid, "account"),
                                          "data": {"type": "accounts", "id": str(account_id)}}},
            "links": {"self": f"{self.base}/account_roles/{sid}"}}

    def person(self, row):
        (id_, organization_id, first_name, middle_name, last_name, picture_url, gender, birthday, secondary_email,
         contact_number, physical_address, facets, unit_id, created_at, updated_at) = row
        sid = str(id_)
        return {"type": "people", "id": sid, "attributes": {
            "organization_id": organization_id, "first_name": first_name, "middle_name": middle_name,
            "last_name": last_name, "picture_url": picture_url, "gender": gender, "birthday": day(birthday),
            "secondary_email": secondary_email, "contact_number": contact_number,
            "physical_address": physical_address, "facets": orjson.Fragment(facets),
            "organizational_unit_id": unit_id, "created_at": ts(created_at), "updated_at": ts(updated_at)},
            "relationships": {
                "account": {"links": _links(self.base, "people", sid, "account")},
                "organizational_unit": {"links": _links(self.base, "people", sid, "organizational_unit"),
                                        "data": _to_one("organizational_units", unit_id)},
                "organization": {"links": _links(self.base, "people", sid, "organization"),
                                 "data": _to_one("organizations", organization_id)}},
            "links": {"self": f"{self.base}/people/{sid}"}}

    def organization(self, row):
        id_, name, slug, enabled, quota_limit, quota_usage, policies, created_at, updated_at = row
        sid = str(id_)
        remaining = None if quota_limit is None else max(quota_limit - quota_usage, 0)
        return {"type": "organizations", "id": sid, "attributes": {
            "name": name, "slug": slug, "enabled": enabled, "quota_limit": quota_limit, "quota_usage": quota_usage,
            "quota_remaining": remaining, "policies": orjson.Fragment(policies), "created_at": ts(created_at),
            "updated_at": ts(updated_at)},
            "relationships": {
                "accounts": {"links": _links(self.base, "organizations", sid, "accounts")},
                "organizational_units": {"links": _links(self.base, "organizations", sid, "organizational_units")}},
            "links": {"self": f"{self.base}/organizations/{sid}"}}

    def data_and_included(self, rows):
        """(data items, included items or None) for account rows, in our server's order."""
        include = self.include
        if not include:
            return [self.account(row) for row in rows], None
        ids = [row[0] for row in rows]
        roles_of = people = organizations = None
        if "roles" in include:
            roles_of = defaultdict(list)
            for role in query(ROLE_SQL, (ids,)):
                roles_of[role[1]].append(role)
        if "person" in include:
            wanted = list({row[-3] for row in rows if row[-3] is not None})
            people = {p[0]: p for p in query(PERSON_SQL, (wanted,))} if wanted else {}
        if "organization" in include:
            wanted = list({row[-2] for row in rows if row[-2] is not None})
            organizations = {o[0]: o for o in query(ORGANIZATION_SQL, (wanted,))} if wanted else {}
        data, included = [], []
        for row in rows:
            roles = roles_of.get(row[0], []) if roles_of is not None else None
            data.append(self.account(row, roles))
        seen_roles, seen_people, seen_orgs = set(), set(), set()
        # Per account, in the schema's field order (roles, person, organization), each row once.
        for row in rows:
            if roles_of is not None:
                for role in roles_of.get(row[0], ()):
                    if role[0] not in seen_roles:
                        seen_roles.add(role[0])
                        included.append(self.role(role))
            if people is not None and row[-3] is not None and row[-3] not in seen_people:
                seen_people.add(row[-3])
                if row[-3] in people:
                    included.append(self.person(people[row[-3]]))
            if organizations is not None and row[-2] is not None and row[-2] not in seen_orgs:
                seen_orgs.add(row[-2])
                if row[-2] in organizations:
                    included.append(self.organization(organizations[row[-2]]))
        return data, included


# ---------------------------------------------------------------- query string

_FAMILY = re.compile(r"^(filter|fields|page)\[([^\[\]]+)\]$")
SORTABLE = {"id": "a.id", "email": "a.email", "account_type": "a.account_type", "auth_type": "a.auth_type",
            "enabled": "a.enabled", "expires_at": "a.expires_at", "person_id": "a.person_id",
            "organization_id": "a.organization_id", "consent_given_at": "a.consent_given_at",
            "last_login_at": "a.last_login_at", "created_at": "a.created_at", "updated_at": "a.updated_at"}

ROLE_NAME_SQL = """(EXISTS (SELECT 1 FROM account_roles r WHERE a.id = r.account_id AND r.name {names}
    AND (r.not_before IS NULL OR r.not_before <= %s) AND (r.expires_at IS NULL OR r.expires_at > %s))
  OR EXISTS (SELECT 1 FROM groups g, group_members m WHERE a.id = m.account_id AND g.id = m.group_id
    AND EXISTS (SELECT 1 FROM jsonb_array_elements(g.roles) AS e WHERE (e.value ->> 'name') {names})))"""
OU_ACCOUNTS_SQL = """EXISTS (SELECT 1 FROM people p WHERE p.id = a.person_id AND p.organizational_unit_id IN (
    SELECT u.id FROM organizational_units u WHERE {}))"""


def _escape_like(value):
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _int(name, raw):
    if not re.fullmatch(r"[-+]?\d{1,10}", raw.strip()) or not -2 ** 31 <= int(raw) < 2 ** 31:
        raise bad_parameter(name, f"Invalid value for {name}: expected an integer.")
    return int(raw)


def _bool(name, raw):
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise bad_parameter(name, f"Invalid value for {name}: expected true, false, 1 or 0.")


class Spec:
    def __init__(self):
        self.where, self.params = [], []
        self.order = []
        self.page_number, self.page_size, self.page_given = 1, DEFAULT_PAGE_SIZE, False
        self.after = None  # page[after]: the id the page starts after (cursor mode)
        self.count = False
        self.include = ()
        self.fields = None


def parse_query(pairs, now, collection=True):
    spec = Spec()
    include_seen = False
    for key, value in pairs:
        if key in ("included", "include"):
            if include_seen:
                raise bad_parameter(key, "Give included paths in one parameter: included or include, not both.")
            include_seen = True
            paths = [p.strip() for p in value.split(",") if p.strip()]
            for path in paths:
                if path not in INCLUDABLE:
                    raise bad_parameter(key, f"The baseline cannot include {path!r}.")
            spec.include = tuple(name for name in INCLUDABLE if name in paths)
            continue
        family = _FAMILY.match(key)
        if family and family.group(1) == "fields":
            if family.group(2) != "accounts" or spec.fields is not None:
                raise bad_parameter(key, "The baseline takes fields[accounts] only, once.")
            names = {n.strip() for n in value.split(",") if n.strip()}
            unknown = names - ACCOUNT_FIELDS
            if unknown:
                raise bad_parameter(key, f"accounts has no field {sorted(unknown)[0]!r}.")
            spec.fields = frozenset(names)
            continue
        if not collection:
            raise bad_parameter(key, f"{key} applies to collections only.")
        if key == "sort":
            for item in value.split(","):
                item = item.strip()
                descending = item.startswith("-")
                name = item[1:] if descending else item
                if name not in SORTABLE:
                    raise bad_parameter(key, f"accounts cannot be sorted by {name!r}.")
                column = SORTABLE[name]
                spec.order.append(f"{column} DESC NULLS FIRST" if descending else f"{column} ASC NULLS LAST")
            if not any(o.startswith("a.id ") for o in spec.order):
                spec.order.append("a.id ASC")
            continue
        if key == "count":
            spec.count = _bool(key, value)
            continue
        if key == "page[after]":
            spec.after = _decode_cursor(key, value)
            continue
        if family and family.group(1) == "page":
            inner = family.group(2)
            if inner not in ("number", "size") or not re.fullmatch(r"\+?\d{1,12}", value.strip()) \
                    or int(value) < 1:
                raise bad_parameter(key, f"{key} must be a positive whole number.")
            number = int(value)
            if inner == "size":
                if number > MAX_PAGE_SIZE:
                    raise bad_parameter(key, f"page[size] may be at most {MAX_PAGE_SIZE}.")
                spec.page_size = number
            else:
                spec.page_number = number
            spec.page_given = True
            continue
        if family and family.group(1) == "filter":
            _add_filter(spec, key, family.group(2), value, now)
            continue
        raise bad_parameter(key, f"Unknown query parameter {key!r}.")
    if not spec.order:
        spec.order = ["a.id ASC"]
    return spec


def _decode_cursor(key, value):
    """The app's cursor ("" starts a walk; else base64url of "id:N", unpadded) -> N."""
    if value == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not re.fullmatch(r"id:\d{1,10}", text):
        raise bad_parameter(key, f"{key} is not a cursor this server gave.")
    return int(text[3:])


def _encode_cursor(last_id):
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _add_filter(spec, key, name, value, now):
    if name == "email__match":
        spec.where.append("a.email ILIKE '%%' || %s || '%%' ESCAPE '/'")
        spec.params.append(_escape_like(value.lower()))
    elif name == "email":
        emails = [v.lower() for v in value.split(",") if v != ""] or [value.lower()]
        spec.where.append("lower(a.email) = ANY(%s)")
        spec.params.append(emails)
    elif name == "enabled":
        spec.where.append("a.enabled = %s")
        spec.params.append(_bool(key, value))
    elif name in ("organization_id", "id", "organization_id__in", "id__in"):
        column = "a." + name.split("__")[0]
        ids = [_int(key, v) for v in value.split(",") if v.strip()]
        if len(ids) == 1:
            spec.where.append(f"{column} = %s")
            spec.params.append(ids[0])
        else:
            spec.where.append(f"{column} = ANY(%s)")
            spec.params.append(ids)
    elif name == "role_name":
        names = [v for v in value.split(",") if v != ""] or [value]
        one = len(names) == 1
        spec.where.append(ROLE_NAME_SQL.format(names="= %s" if one else "= ANY(%s)"))
        spec.params.extend([names[0] if one else names, now, now, names[0] if one else names])
    elif name == "ou_accounts":
        units = [_int(key, v) for v in value.split(",") if v.strip()]
        prefix = "u.ancestry LIKE (SELECT ancestry FROM organizational_units WHERE id = %s) || '%%'"
        spec.where.append(OU_ACCOUNTS_SQL.format(" OR ".join([prefix] * len(units))))
        spec.params.extend(units)
    else:
        raise bad_parameter(key, f"The baseline has no filter {name!r}.")


def page_links(spec, base_url, url, pairs, has_next, total, last_id=None):
    kept = [(k, v) for k, v in pairs if k not in ("page[number]", "page[size]", "page[after]")]
    if spec.after is not None:  # cursor mode: forward only, no last
        size = [("page[size]", str(spec.page_size))]

        def cursor_link(cursor):
            return base_url + "?" + urlencode(kept + [("page[after]", cursor)] + size, safe=",:")

        return {"self": url, "first": cursor_link(""), "prev": None,
                "next": cursor_link(_encode_cursor(last_id)) if has_next and last_id is not None else None}

    def link(number):
        page = [("page[number]", str(number))]
        if spec.page_given or spec.page_size != DEFAULT_PAGE_SIZE:
            page.append(("page[size]", str(spec.page_size)))
        return base_url + "?" + urlencode(kept + page, safe=",:")

    links = {"self": url, "first": link(1),
             "prev": link(spec.page_number - 1) if spec.page_number > 1 else None,
             "next": link(spec.page_number + 1) if has_next else None}
    if total is not None:
        links["last"] = link(max(1, -(-total // spec.page_size)))
    return links


# ---------------------------------------------------------------- views

def list_accounts(environ, now):
    require_admin(authenticate(environ, now))
    pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    spec = parse_query(pairs, now)
    origin, base_url, url = request_urls(environ)
    base = origin + API_PREFIX
    renderer = Renderer(base, spec.fields, spec.include)
    where = (" WHERE " + " AND ".join(spec.where)) if spec.where else ""
    total = None
    if spec.count:
        total = query("SELECT count(*) FROM accounts a" + where, spec.params)[0][0]
    if spec.after is not None:  # keyset: WHERE id > cursor, no offset however deep
        where += (" AND " if where else " WHERE ") + "a.id > %s"
        spec.params.append(spec.after)
    rows = query(f"SELECT {renderer.select} FROM accounts a{where} ORDER BY {', '.join(spec.order)} "
                 f"LIMIT %s OFFSET %s", [*spec.params, spec.page_size + 1, (spec.page_number - 1) * spec.page_size])
    has_next = len(rows) > spec.page_size
    rows = rows[:spec.page_size]
    last_id = rows[-1][0] if rows else None
    data, included = renderer.data_and_included(rows)
    document = {"data": data}
    if included is not None:
        document["included"] = included
    document["links"] = page_links(spec, base_url, url, pairs, has_next, total, last_id)
    if total is not None:
        document["meta"] = {"count": total}
    document["jsonapi"] = JSONAPI
    return 200, document, []


def show_account(environ, now, account_id):
    require_admin(authenticate(environ, now))
    spec = parse_query(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True), now, collection=False)
    origin, _, _ = request_urls(environ)
    base = origin + API_PREFIX
    renderer = Renderer(base, spec.fields, spec.include)
    rows = query(f"SELECT {renderer.select} FROM accounts a WHERE a.id = %s", (account_id,)) \
        if 0 < account_id < 2 ** 31 else []
    if not rows:
        raise HttpError(404, "not_found", "Not found", f"There is no accounts with id {account_id}.")
    data, included = renderer.data_and_included(rows)
    document = {"data": data[0]}
    if included is not None:
        document["included"] = included
    document["links"] = {"self": f"{base}/accounts/{account_id}"}
    document["jsonapi"] = JSONAPI
    return 200, document, [("ETag", f'"accounts-{account_id}-v{rows[0][-1]}"')]


def me(environ, now):
    principal = authenticate(environ, now)
    if environ.get("QUERY_STRING"):
        raise bad_parameter(next(iter(parse_qsl(environ["QUERY_STRING"], keep_blank_values=True)), ("?",))[0],
                            "The baseline's /accounts/me takes no query parameters.")
    origin, _, _ = request_urls(environ)
    base = origin + API_PREFIX
    renderer = Renderer(base, None, ())
    row = principal.account_row  # id, the ACCOUNT_COLUMNS, version: read with the session
    account_id, person_id, organization_id, version = row[0], row[6], row[7], row[-1]
    item = renderer.account((*row[:-1], person_id, organization_id, version))
    document = {"data": item, "links": {"self": f"{base}/accounts/{account_id}"}, "jsonapi": JSONAPI,
                "meta": {"effective_roles": principal.roles}}
    return 200, document, [("ETag", f'"accounts-{account_id}-v{version}"')]


# Login ---------------------------------------------------------------

_failures = defaultdict(deque)
_failures_lock = threading.Lock()


def _rate_limited(address, now_s):
    with _failures_lock:
        window = _failures[address]
        while window and window[0] <= now_s - LOGIN_WINDOW:
            window.popleft()
        return len(window) >= LOGIN_FAILURES_ALLOWED


def _count_failure(address, now_s):
    with _failures_lock:
        _failures[address].append(now_s)


def login_failed():
    return HttpError(401, "invalid_credentials", "Unauthenticated", "Invalid credentials.",
                     headers=[("WWW-Authenticate", 'Bearer realm="iam"')])


def _read_body(environ):
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", MEDIA_TYPE):
        raise HttpError(415, "unsupported_media_type", "Unsupported media type",
                        "Send application/vnd.api+json or application/json.")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > 1024 * 1024:
        raise HttpError(400, "invalid_document", "Bad request", "The body is too large.")
    try:
        return orjson.loads(environ["wsgi.input"].read(length))
    except orjson.JSONDecodeError:
        raise HttpError(400, "invalid_json", "Bad request", "The body is not valid JSON.") from None


def _insert_audit(cur, action, actor_id, resource_type, resource_id, organization_id, ip, at):
    cur.execute("INSERT INTO audit_events (actor_account_id, action, resource_type, resource_id, organization_id, "
                "changes, ip, created_at, updated_at, version) VALUES (%s, %s, %s, %s, %s, '{}', %s, %s, %s, 1)",
                (actor_id, action, resource_type, str(resource_id), organization_id, ip, at, at))


def login(environ, now):
    address = environ.get("REMOTE_ADDR")
    now_s = time.monotonic()
    if _rate_limited(address, now_s):
        raise HttpError(429, "too_many_requests", "Too many requests", "Too many failed attempts; wait.")
    try:
        body = _read_body(environ)
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_document", "Bad request", "The body must be a JSON object.")
        data = body.get("data")
        args = data["attributes"] if isinstance(data, dict) and isinstance(data.get("attributes"), dict) else body
        email, password = args.get("email"), args.get("password")
        if not isinstance(email, str) or not 1 <= len(email) <= 320 or not isinstance(password, str) \
                or not 1 <= len(password) <= 4096:
            raise HttpError(422, "invalid_value", "Invalid attribute", "email and password are required strings.")
        conn = connection()
        rows = conn.execute("SELECT id, password_hash, auth_type, enabled, expires_at, organization_id FROM accounts "
                            "WHERE lower(email) = %s", (email.strip().lower(),)).fetchall()
        claimed = False
        if rows:
            account_id = rows[0][0]
            # The app's claim_login_attempt: one conditional UPDATE, committed before any password is checked.
            claimed = bool(conn.execute(
                "UPDATE accounts SET failed_login_count = CASE WHEN locked_until IS NOT NULL "
                "AND locked_until <= %(now)s THEN 1 ELSE failed_login_count + 1 END, locked_until = CASE WHEN "
                "locked_until IS NOT NULL AND locked_until <= %(now)s THEN NULL ELSE locked_until END "
                "WHERE id = %(id)s AND (failed_login_count < %(limit)s OR (locked_until IS NOT NULL "
                "AND locked_until <= %(now)s)) RETURNING id",
                {"now": now, "id": account_id, "limit": MAX_FAILURES}).fetchall())
        if not claimed:
            try:
                hasher.verify(_DUMMY_HASH, password)
            except VerificationError:
                pass
            raise login_failed()
        account_id, password_hash, auth_type, enabled, expires_at, organization_id = rows[0]
        try:
            ok = bool(password_hash) and hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
        ip = address
        if not ok or auth_type != "password" or not enabled or (expires_at is not None and expires_at <= now):
            with conn.transaction():
                cur = conn.cursor()
                _insert_audit(cur, "login_failed", account_id, "accounts", account_id, organization_id, ip, now)
                locked = cur.execute(
                    "UPDATE accounts SET locked_until = %s WHERE id = %s AND failed_login_count >= %s "
                    "AND locked_until IS NULL RETURNING id",
                    (now + timedelta(seconds=LOCK_SECONDS), account_id, MAX_FAILURES)).fetchall()
                if locked:
                    _insert_audit(cur, "lock", account_id, "accounts", account_id, organization_id, ip, now)
            raise login_failed()
        new_hash = hasher.hash(password) if hasher.check_needs_rehash(password_hash) else password_hash
        user_agent = environ.get("HTTP_USER_AGENT", "")[:512] or None
        session_expires = now + timedelta(seconds=REFRESH_TTL)
        refresh_token = secrets.token_urlsafe(32)
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("UPDATE accounts SET failed_login_count = 0, locked_until = NULL, last_login_at = %s, "
                        "password_hash = %s, updated_at = %s, version = version + 1 WHERE id = %s",
                        (now, new_hash, datetime.now(UTC), account_id))
            created = datetime.now(UTC)
            session_id = cur.execute(
                "INSERT INTO account_sessions (account_id, api_key_id, user_agent, ip, last_used_at, expires_at, "
                "revoked_at, read_only, amr, auth_time, created_at, updated_at, version) VALUES (%s, NULL, %s, %s, "
                "%s, %s, NULL, false, '[\"pwd\"]', %s, %s, %s, 1) RETURNING id",
                (account_id, user_agent, ip, now, session_expires, now, created, created)).fetchone()[0]
            cur.execute("INSERT INTO refresh_tokens (session_id, token_digest, created_at, used_at) "
                        "VALUES (%s, %s, %s, NULL)",
                        (session_id, hashlib.sha256(refresh_token.encode()).hexdigest(), created))
            _insert_audit(cur, "login", account_id, "account_sessions", session_id, organization_id, ip, created)
    except HttpError as exc:
        if exc.status in (400, 401, 422):
            _count_failure(address, now_s)
        raise

    token_expires = min(now + timedelta(seconds=ACCESS_TTL), session_expires)
    claims = {"sub": str(account_id), "sid": str(session_id), "iat": int(now.timestamp()),
              "exp": int(token_expires.timestamp()), "jti": uuid.uuid4().hex, "typ": "access", "iss": "iam"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    origin, _, _ = request_urls(environ)
    base = origin + API_PREFIX
    sid = str(session_id)
    document = {
        "data": {"type": "account_sessions", "id": sid, "attributes": {
            "account_id": account_id, "user_agent": user_agent, "ip": ip, "read_only": False,
            "amr": ["pwd"], "auth_time": fmt(now), "status": "active",
            "created_at": fmt(created), "last_used_at": fmt(now), "expires_at": fmt(session_expires),
            "revoked_at": None},
            "relationships": {"account": {"links": _links(base, "account_sessions", sid, "account"),
                                          "data": {"type": "accounts", "id": str(account_id)}}},
            "links": {"self": f"{base}/account_sessions/{sid}"}},
        "links": {"self": f"{base}/account_sessions/{sid}"},
        "jsonapi": JSONAPI,
        "meta": {"token": token, "token_type": "Bearer",
                 "expires_at": fmt(datetime.fromtimestamp(claims["exp"], UTC)), "account_id": str(account_id),
                 "refresh_token": refresh_token, "refresh_expires_at": fmt(session_expires)},
    }
    return 200, document, []


# ---------------------------------------------------------------- the WSGI callable

_ACCOUNT_ITEM = re.compile(r"^/accounts/(\d{1,10})$")


def route(environ, now):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    if not path.startswith(API_PREFIX + "/"):
        raise HttpError(404, "not_found", "Not found", "No such endpoint.")
    path = path[len(API_PREFIX):].rstrip("/")
    if path == "/auth/login":
        if method != "POST":
            raise HttpError(405, "method_not_allowed", "Method not allowed", "POST only.")
        return login(environ, now)
    if method != "GET":
        raise HttpError(405, "method_not_allowed", "Method not allowed", "GET only.")
    if path == "/accounts":
        return list_accounts(environ, now)
    if path == "/accounts/me":
        return me(environ, now)
    item = _ACCOUNT_ITEM.match(path)
    if item:
        return show_account(environ, now, int(item.group(1)))
    raise HttpError(404, "not_found", "Not found", "The baseline does not serve this endpoint.")


def application(environ, start_response):
    now = datetime.now(UTC)
    headers = []
    try:
        status, document, headers = route(environ, now)
    except HttpError as exc:
        status, document, headers = exc.status, exc.document(), exc.headers
    except psycopg.OperationalError:
        _local.conn = None  # a broken connection: the next request opens a new one
        traceback.print_exc(file=sys.stderr)
        status, document = 500, HttpError(500, "internal_error", "Internal server error", "Database error.").document()
    except Exception:  # noqa: BLE001 - a baseline that breaks must still answer, and say so in the log
        traceback.print_exc(file=sys.stderr)
        status, document = 500, HttpError(500, "internal_error", "Internal server error", "Unexpected.").document()
    body = orjson.dumps(document)
    start_response(STATUS_TEXT.get(status, f"{status} Error"),
                   [("Content-Type", MEDIA_TYPE), ("Content-Length", str(len(body))), *headers])
    return [body]
