"""Migrations: empty database -> head -> base -> head, on both databases, matching the models."""
import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from iam import create_app
from iam.extensions import autogenerate_filter, db
from tests.conftest import DATABASES, PG_URL, wipe_postgresql

SCHEMA = "iam_migration_test"
TABLES = {"organizations", "organizational_units", "people", "accounts", "account_roles", "api_keys",
          "account_sessions", "refresh_tokens", "audit_events", "settings", "invitations", "groups", "group_members",
          "identity_providers", "provider_domains", "account_identities", "sso_attempts", "sso_codes",
          "mfa_factors", "mfa_recovery_codes", "mfa_challenges", "oauth_clients", "signing_keys",
          "oauth_codes", "oauth_consents"}


@pytest.fixture(params=DATABASES)
def migration_app(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        # A schema of its own, so this test never touches the suite's tables.
        wipe_postgresql(PG_URL, SCHEMA)
        url = PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{SCHEMA}"
    app = create_app({"TESTING": True, "IAM_DATABASE_URL": url})
    yield app
    with app.app_context():
        db.engine.dispose()
    if request.param == "postgresql":
        wipe_postgresql(PG_URL, SCHEMA)


def _tables():
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(migration_app):
    with migration_app.app_context():
        assert _tables() == set()
        upgrade()
        assert _tables() == TABLES
        downgrade(revision="base")
        assert _tables() == set()
        upgrade()
        assert _tables() == TABLES


def test_the_case_insensitive_email_index_survives_every_migration(migration_app):
    """Alembic cannot reflect lower(email) on SQLite: a batch rebuild of accounts would drop it."""
    with migration_app.app_context():
        upgrade()
        if db.engine.dialect.name == "sqlite":  # the inspector skips expression indexes there
            with db.engine.connect() as conn:
                names = {row[0] for row in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'accounts'")}
        else:
            names = {index["name"] for index in inspect(db.engine).get_indexes("accounts")}
    assert "uq_accounts_email_lower" in names


def test_migrated_schema_matches_the_models(migration_app):
    """Autogenerate finds nothing to add: the models and the migrations describe one schema."""
    with migration_app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": autogenerate_filter(conn.dialect.name)})
            with warnings.catch_warnings():
                # SQLite cannot reflect expression indexes (lower(email)); alembic says so and skips it.
                warnings.filterwarnings("ignore", message=".*expression-based index.*")
                diffs = compare_metadata(context, db.metadata)
    assert diffs == [], diffs



def test_0008_confines_existing_ou_grants_to_the_holders_organization(migration_app):
    """Roles stored before 0008 keep what they reached, and no more: an ou scope that named a
    unit of A and ids that later became units of B is confined to A, the holder's organization."""
    from sqlalchemy import text

    now = "2026-11-30 12:00:00"
    with migration_app.app_context():
        upgrade(revision="0007")
        with db.engine.begin() as conn:
            def insert(table, **values):
                values.update(created_at=now, updated_at=now, version=1)
                columns = ", ".join(values)
                conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"),
                             values)

            insert("organizations", id=1, name="A", slug="a", enabled=True, quota_usage=0)
            insert("organizations", id=2, name="B", slug="b", enabled=True, quota_usage=0)
            insert("organizational_units", id=1, organization_id=1, name="a", path="/a", ancestry="/1/", policies="{}")
            insert("organizational_units", id=8, organization_id=2, name="b", path="/b", ancestry="/8/", policies="{}")
            for id_, org in ((1, 1), (2, None)):
                insert("accounts", id=id_, email=f"u{id_}@example.com", account_type="personal_account",
                       auth_type="password", enabled=True, organization_id=org, preferences="{}")
            for id_, account, scopes in ((1, 1, '{"ou": [1, 8, 9]}'), (2, 2, '{"ou": [8]}'), (3, 2, '{"ou": [77]}'),
                                         (4, 1, '{"organization": [1]}')):
                insert("account_roles", id=id_, account_id=account, name="ou_manager", scopes=scopes, info="{}")
        upgrade()
        with db.engine.connect() as conn:
            confined = dict(conn.execute(text("SELECT id, scope_organization_id FROM account_roles")).all())
    # The holder's organization; else the organization of its lowest unit; else none (reaches nothing).
    assert confined == {1: 1, 2: 2, 3: None, 4: None}


def test_0010_records_how_existing_sessions_were_authenticated(migration_app):
    """Sessions opened before 0010 were password logins or API-key logins, authenticated when
    they were opened: their amr and auth_time say so."""
    import json

    from sqlalchemy import text

    now = "2026-11-30 12:00:00"
    with migration_app.app_context():
        upgrade(revision="0009")
        with db.engine.begin() as conn:
            def insert(table, **values):
                values.setdefault("created_at", now)
                values.update(updated_at=now, version=1)
                columns = ", ".join(values)
                conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"),
                             values)

            insert("accounts", id=1, email="u@example.com", account_type="personal_account", auth_type="password",
                   enabled=True, preferences="{}", failed_login_count=0)
            insert("api_keys", id=1, account_id=1, name="nightly", prefix="IAM_abcd", key_digest="d", scopes="{}")
            insert("account_sessions", id=1, account_id=1, expires_at="2026-12-30 12:00:00", read_only=False,
                   created_at="2026-11-29 08:00:00")
            insert("account_sessions", id=2, account_id=1, api_key_id=1, expires_at="2026-12-30 12:00:00",
                   read_only=False)
        upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, amr, auth_time, created_at FROM account_sessions ORDER BY id")).all()
    amr = {row[0]: row[1] if isinstance(row[1], list) else json.loads(row[1]) for row in rows}
    assert amr == {1: ["pwd"], 2: ["api_key"]}
    assert all(str(row[2])[:19] == str(row[3])[:19] for row in rows)


def test_0011_keeps_every_invitation_and_sqlites_autoincrement(migration_app):
    """0011 rebuilds invitations on SQLite: the rows stay with their ids, ids still never come
    back, and the new column is empty."""
    from sqlalchemy import text

    now = "2026-11-30 12:00:00"
    with migration_app.app_context():
        upgrade(revision="0010")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO organizations (id, name, slug, enabled, quota_usage, created_at, "
                              "updated_at, version) VALUES (1, 'Acme', 'acme', true, 0, :now, :now, 1)"), {"now": now})
            for n in (1, 2, 3):  # ids as the database hands them out: 1, 2, 3
                conn.execute(text(
                    "INSERT INTO invitations (email, organization_id, roles, token_digest, expires_at, created_at, "
                    "updated_at, version) VALUES (:email, 1, '[]', :digest, :now, :now, :now, 1)"),
                    {"email": f"i{n}@example.com", "digest": f"d{n}", "now": now})
            conn.execute(text("DELETE FROM invitations WHERE email = 'i3@example.com'"))
        upgrade()
        with db.engine.begin() as conn:
            rows = conn.execute(text("SELECT id, email, identity_provider_id FROM invitations ORDER BY id")).all()
            conn.execute(text(
                "INSERT INTO invitations (email, organization_id, roles, expires_at, created_at, updated_at, version) "
                "VALUES ('new@example.com', 1, '[]', :now, :now, :now, 1)"), {"now": now})
            new_id = conn.execute(text("SELECT id FROM invitations WHERE email = 'new@example.com'")).scalar()
    assert [tuple(row) for row in rows] == [(1, "i1@example.com", None), (2, "i2@example.com", None)]
    assert new_id == 4  # 3 was deleted: never handed out again
