"""Deterministic benchmark data: `python -m bench.seed --accounts 100000 --database-url URL`.

Same `--seed`, same `--accounts`: the same rows, ids, timestamps and all (only the Argon2
hashes differ, since each hash has its own salt). The database is migrated to head through
the app's own migrations (never create_all); a database that already holds rows is refused
unless `--reset` (which drops and recreates the `public` schema first).

Rows are written through the SQLAlchemy models in bulk (`session.execute(insert(Model),
[dicts])`), in batches, with explicit ids so that derived columns (`ancestry`) can be
computed up front exactly as iam/resources/organizational_units.py computes them.

Shape of the data, for N accounts:
- max(10, N // 1000) organizations, each with a unit tree of 3 roots x 3 children x 2
  grandchildren (30 units), `path` "/root/child/leaf" and `ancestry` "/1/4/13/";
- one person per account (in the account's organization; 90% of them in a unit of it);
- accounts user{n}@{domain} (n = account id), 5 domains, 95% enabled, all with one
  precomputed password hash (USER_PASSWORD);
- 0 to 3 roles per account (viewer, editor, org_admin, auditor, ou_manager, billing, and
  admin rarely), scoped as iam/auth/policy.py reads them; some expired, some not yet valid;
- 5 groups per organization with roles, about a quarter of the accounts in one or two;
- a bench admin (ADMIN_EMAIL / --admin-password) with the global `admin` role, id N + 1.
"""
import argparse
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone

from . import ADMIN_EMAIL, ADMIN_PASSWORD, DOMAINS, USER_PASSWORD, database_url_from

BATCH = 5000
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=365)
EXPIRED = datetime(2024, 6, 1, tzinfo=timezone.utc)
NOT_YET = datetime(2099, 1, 1, tzinfo=timezone.utc)

FIRST_NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Dennis", "Frances", "Ken",
               "Radia", "Linus", "Hedy", "John", "Katherine", "Tim", "Sophie", "Niklaus", "Adele", "Bjarne",
               "Lynn", "Guido", "Mary", "James", "Anita", "Robin", "Shafi", "Leslie", "Jean", "Yukihiro")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Ritchie", "Allen",
              "Thompson", "Perlman", "Torvalds", "Lamarr", "Backus", "Johnson", "Berners-Lee", "Wilson", "Wirth",
              "Goldberg", "Stroustrup", "Conway", "van Rossum", "Shaw", "Gosling", "Borg", "Milner", "Goldwasser",
              "Lamport", "Sammet", "Matsumoto")
UNIT_ROOTS = ("engineering", "sales", "operations")
UNIT_CHILDREN = ("north", "south", "central")
UNIT_LEAVES = ("team-a", "team-b")
GROUPS = (
    ("editors", "Everyone who edits content", [("editor", "organization")]),
    ("viewers", "Read-only members", [("viewer", "organization")]),
    ("auditors", "Compliance", [("auditor", "organization")]),
    ("support", "Support desk", [("viewer", "organization"), ("support", "organization")]),
    ("managers", "People managers", [("editor", "organization"), ("reports", None)]),
)
# (name, weight, scope kind): the roles handed out to generated accounts.
ROLES = (("viewer", 40, "organization"), ("editor", 25, "organization"), ("org_admin", 6, "organization"),
         ("auditor", 5, "organization"), ("ou_manager", 8, "ou"), ("billing", 16, "project"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10000, help="how many accounts (default 10000)")
    parser.add_argument("--database-url", help="target database (default: $IAM_DATABASE_URL)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--reset", action="store_true",
                        help="wipe the database first (DROP SCHEMA public CASCADE) if it holds anything")
    parser.add_argument("--admin-password", default=ADMIN_PASSWORD, help="the bench admin's password")
    return parser.parse_args(argv)


class Timer:
    def __init__(self):
        self.start = self.last = time.perf_counter()

    def lap(self, what, rows=None):
        now = time.perf_counter()
        extra = f" ({rows:,} rows, {rows / max(now - self.last, 1e-9):,.0f}/s)" if rows is not None else ""
        print(f"  {what:<28} {now - self.last:7.2f} s{extra}", flush=True)
        self.last = now


def stamp(rng, fraction):
    """A timestamp inside the year after EPOCH, at `fraction` of the way, with jitter."""
    seconds = SPAN.total_seconds() * fraction + rng.uniform(0, 3600)
    return EPOCH + timedelta(seconds=int(seconds), microseconds=rng.randrange(1_000_000))


def generate(n_accounts, seed, user_hash, admin_hash):
    """Every row to insert, as {table: [dicts]}, in foreign-key order (pure function of the args)."""
    rng = random.Random(seed)
    n_orgs = max(10, n_accounts // 1000)
    rows = {name: [] for name in ("organizations", "organizational_units", "people", "accounts", "account_roles",
                                  "groups", "group_members")}

    for org in range(1, n_orgs + 1):
        created = stamp(rng, 0)
        rows["organizations"].append({
            "id": org, "name": f"Organization {org}", "slug": f"org-{org}", "enabled": org % 17 != 0,
            "quota_limit": 1000 * org if org % 3 == 0 else None, "quota_usage": org % 3 * 7,
            "created_at": created, "updated_at": created, "version": 1})

    units_of = {}   # org -> [unit ids]
    unit_id = 0
    for org in range(1, n_orgs + 1):
        units_of[org] = []

        def add_unit(name, parent):
            nonlocal unit_id
            unit_id += 1
            created = stamp(rng, 0)
            # As OrganizationalUnits.create: path from the parent's, ancestry the parent's plus our id.
            path = (parent["path"] if parent else "") + "/" + name
            ancestry = (parent["ancestry"] if parent else "/") + f"{unit_id}/"
            unit = {"id": unit_id, "organization_id": org, "parent_id": parent["id"] if parent else None,
                    "name": name, "path": path, "ancestry": ancestry,
                    "description": f"{name} of organization {org}" if rng.random() < 0.5 else None,
                    "policies": {"mfa_required": True} if rng.random() < 0.2 else {},
                    "created_at": created, "updated_at": created, "version": 1}
            rows["organizational_units"].append(unit)
            units_of[org].append(unit_id)
            return unit

        for root_name in UNIT_ROOTS:
            root = add_unit(root_name, None)
            for child_name in UNIT_CHILDREN:
                child = add_unit(child_name, root)
                for leaf_name in UNIT_LEAVES:
                    add_unit(leaf_name, child)

    groups_of = {}
    group_id = 0
    for org in range(1, n_orgs + 1):
        groups_of[org] = []
        for name, description, roles in GROUPS:
            group_id += 1
            created = stamp(rng, 0.01)
            group_roles = []
            for role_name, scope in roles:
                scopes = {"organization": [org]} if scope == "organization" else {}
                group_roles.append({"name": role_name, "scopes": scopes})
            rows["groups"].append({"id": group_id, "name": name, "description": description, "organization_id": org,
                                   "roles": group_roles, "created_at": created, "updated_at": created,
                                   "version": 1})
            groups_of[org].append(group_id)

    role_names = [name for name, _, _ in ROLES]
    role_weights = [weight for _, weight, _ in ROLES]
    role_kinds = {name: kind for name, _, kind in ROLES}
    role_id = 0
    for n in range(1, n_accounts + 1):
        org = rng.randrange(n_orgs) + 1
        created = stamp(rng, n / (n_accounts + 1))
        unit = rng.choice(units_of[org]) if rng.random() < 0.9 else None
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        rows["people"].append({
            "id": n, "organization_id": org, "organizational_unit_id": unit, "first_name": first,
            "middle_name": rng.choice(FIRST_NAMES) if rng.random() < 0.2 else None, "last_name": last,
            "picture_url": f"https://pictures.example/{n}.png" if rng.random() < 0.3 else None,
            "gender": rng.choice(("female", "male", "other", None)),
            "birthday": date(1950, 1, 1) + timedelta(days=rng.randrange(20000)) if rng.random() < 0.6 else None,
            "secondary_email": f"{first.lower()}.{n}@home.example" if rng.random() < 0.25 else None,
            "contact_number": f"+1-555-{n % 10000:04d}" if rng.random() < 0.4 else None,
            "physical_address": f"{n % 999 + 1} Main Street, Springfield" if rng.random() < 0.3 else None,
            "facets": rng.sample(("remote", "contractor", "manager", "oncall", "intern"), rng.randrange(3)),
            "created_at": created, "updated_at": created, "version": 1})
        enabled = rng.random() < 0.95
        rows["accounts"].append({
            "id": n, "email": f"user{n}@{DOMAINS[n % len(DOMAINS)]}",
            "account_type": "service_account" if rng.random() < 0.05 else "personal_account",
            "auth_type": "password", "enabled": enabled,
            "expires_at": EXPIRED if rng.random() < 0.01 else None,
            "person_id": n, "organization_id": org,
            "preferences": {"locale": rng.choice(("en", "fr", "de")), "theme": "dark"} if rng.random() < 0.3 else {},
            "consent_given_at": created + timedelta(minutes=5) if rng.random() < 0.7 else None,
            "last_login_at": created + timedelta(days=rng.randrange(1, 30)) if rng.random() < 0.5 else None,
            "password_hash": user_hash, "password_reset_token_digest": None, "password_reset_token_expires_at": None,
            "failed_login_count": 0, "locked_until": None,
            "created_at": created, "updated_at": created, "version": 1})

        k = rng.choices((0, 1, 2, 3), weights=(30, 40, 20, 10))[0]
        names = set()
        while len(names) < k:
            names.add(rng.choices(role_names, weights=role_weights)[0])
        if rng.random() < 0.0005:
            names.add("admin")
        for name in sorted(names):
            role_id += 1
            kind = "global" if name == "admin" else role_kinds[name]
            if kind == "organization":
                scopes = {"organization": [org]}
            elif kind == "ou":
                scopes = {"ou": [unit if unit is not None else units_of[org][0]]}
            elif kind == "project":
                scopes = {"project": [rng.randrange(1, 200)]}
            else:
                scopes = {}
            window = rng.random()
            rows["account_roles"].append({
                "id": role_id, "account_id": n, "name": name, "scopes": scopes,
                "scope_organization_id": org if kind == "ou" else None,
                "info": {"granted_by": "bench.seed"} if rng.random() < 0.5 else {},
                "not_before": NOT_YET if window < 0.02 else None,
                "expires_at": EXPIRED if 0.02 <= window < 0.07 else None,
                "created_at": created, "updated_at": created, "version": 1})

        membership = rng.random()
        joined = rng.sample(groups_of[org], 2 if membership < 0.05 else 1 if membership < 0.25 else 0)
        for group in sorted(joined):
            rows["group_members"].append({"group_id": group, "account_id": n,
                                          "created_at": created + timedelta(hours=1)})

    admin_id = n_accounts + 1
    created = EPOCH
    rows["accounts"].append({
        "id": admin_id, "email": ADMIN_EMAIL, "account_type": "local_account", "auth_type": "password",
        "enabled": True, "expires_at": None, "person_id": None, "organization_id": None, "preferences": {},
        "consent_given_at": None, "last_login_at": None, "password_hash": admin_hash,
        "password_reset_token_digest": None, "password_reset_token_expires_at": None, "failed_login_count": 0,
        "locked_until": None, "created_at": created, "updated_at": created, "version": 1})
    rows["account_roles"].append({
        "id": role_id + 1, "account_id": admin_id, "name": "admin", "scopes": {}, "info": {"granted_by": "bench.seed"},
        "scope_organization_id": None, "not_before": None, "expires_at": None, "created_at": created, "updated_at": created, "version": 1})
    return rows


def _is_empty(engine):
    """No table of the public schema holds a row (a fresh or freshly migrated database)."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            if table == "alembic_version":
                continue
            if conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{table}")')).scalar():
                return False
    return True


def _wipe(engine):
    from sqlalchemy import MetaData, text

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            metadata = MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)


def main(argv=None):
    args = parse_args(argv)
    url = database_url_from(args.database_url)
    if args.accounts < 1:
        raise SystemExit("--accounts must be at least 1")
    timer = Timer()

    from flask_migrate import upgrade
    from sqlalchemy import insert, text

    from iam import create_app
    from iam.auth import passwords
    from iam.extensions import db
    from iam.models import (Account, AccountRole, Group, Organization, OrganizationalUnit, Person,
                            group_members)

    app = create_app({"IAM_DATABASE_URL": url, "IAM_SECRET_KEY": "bench-seed-" + "x" * 32, "IAM_ENV": "bench",
                      "IAM_BOOTSTRAP_ADMIN_EMAIL": "", "IAM_BOOTSTRAP_ADMIN_PASSWORD": "",
                      # Bulk inserts and VACUUM ANALYZE of 100k rows outlast a request's statement timeout.
                      "IAM_DB_STATEMENT_TIMEOUT": 0})
    with app.app_context():
        engine = db.engine
        print(f"seeding {args.accounts:,} accounts (seed {args.seed}) into {engine.url.render_as_string()}")
        if not _is_empty(engine):
            if not args.reset:
                raise SystemExit("the database already holds rows: give --reset to wipe it first")
            _wipe(engine)
            timer.lap("wiped")
        upgrade()
        timer.lap("migrated to head")

        user_hash = passwords.hash_password(USER_PASSWORD)
        admin_hash = passwords.hash_password(args.admin_password)
        rows = generate(args.accounts, args.seed, user_hash, admin_hash)
        timer.lap("generated rows")

        targets = (("organizations", Organization), ("organizational_units", OrganizationalUnit),
                   ("people", Person), ("accounts", Account), ("account_roles", AccountRole), ("groups", Group),
                   ("group_members", group_members))
        session = db.session
        for name, target in targets:
            table_rows = rows[name]
            for start in range(0, len(table_rows), BATCH):
                # render_nulls: one statement shape per table (otherwise rows are grouped by which
                # of their values are None, one INSERT per group).
                session.execute(insert(target).execution_options(render_nulls=True), table_rows[start:start + BATCH])
            timer.lap(f"inserted {name}", len(table_rows))
        session.commit()

        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                for name, target in targets:
                    if name == "group_members":
                        continue
                    conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"COALESCE((SELECT max(id) FROM {name}), 1), (SELECT max(id) FROM {name}) IS NOT NULL)"))
            timer.lap("sequences set")
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            timer.lap("vacuum analyze")
        else:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            timer.lap("analyze")
        db.session.remove()
        engine.dispose()

    counts = {name: len(rows[name]) for name in rows}
    print(f"done in {time.perf_counter() - timer.start:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"bench admin: {ADMIN_EMAIL} / {args.admin_password} (account id {args.accounts + 1}); "
          f"every other account's password: {USER_PASSWORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
