"""Ids are never reused after a delete (docs/API.md section 1), on both databases.

SQLite without AUTOINCREMENT hands out max(id)+1, so the id of a deleted newest row comes back;
migration 0009 rebuilds every table with AUTOINCREMENT and the models declare it. PostgreSQL
sequences never hand a value out twice.
"""
import sqlite3
import warnings

import pytest
from flask_migrate import upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from iam import create_app
from iam.extensions import db
from tests import test_migrations
from tests.helpers import assert_jsonapi

NOW = "2026-11-30 12:00:00.000000"
migration_app = test_migrations.migration_app  # its fixture: a fresh database, SQLite and PostgreSQL
# The tables with an integer id at 0008 (the ones 0009 rebuilt), and every one of the models now.
ID_TABLES_0008 = {"organizations", "organizational_units", "people", "accounts", "account_roles", "api_keys",
                  "account_sessions", "refresh_tokens", "audit_events", "settings", "invitations", "groups"}
ID_TABLES = ID_TABLES_0008 | {"identity_providers", "account_identities", "sso_attempts", "sso_codes",
                                  "mfa_factors", "mfa_recovery_codes", "mfa_challenges", "oauth_clients",
                                  "signing_keys", "oauth_codes", "oauth_consents"}


# ------------------------------------------------------------------ the models

def test_every_model_table_with_an_integer_id_declares_autoincrement(app):
    tables = {t.name: t for t in db.metadata.sorted_tables}
    with_id = {name for name, t in tables.items()
               if [c.name for c in t.primary_key.columns] == ["id"]}
    assert with_id == ID_TABLES
    assert {name for name in with_id if not tables[name].dialect_options["sqlite"]["autoincrement"]} == set()


def test_migrated_sqlite_schema_has_autoincrement_exactly_where_the_models_do(app, sqlite_only):
    with app.app_context(), db.engine.connect() as conn:
        ddl = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all())
    migrated = {name for name, sql in ddl.items() if "AUTOINCREMENT" in sql.upper()}
    modelled = {t.name for t in db.metadata.sorted_tables if t.dialect_options["sqlite"]["autoincrement"]}
    assert migrated == modelled == ID_TABLES


def test_every_postgresql_id_has_a_sequence(app, postgresql_only):
    with app.app_context(), db.engine.connect() as conn:
        sequences = {table: conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
                     for table in ID_TABLES}
        defaults = {row[0]: row[1] for row in conn.execute(text(
            "SELECT table_name, column_default FROM information_schema.columns "
            "WHERE column_name = 'id' AND table_schema = current_schema()"))}
    assert all(sequences.values()), sequences
    assert {t: d for t, d in defaults.items() if t in ID_TABLES and not (d or "").startswith("nextval(")} == {}


# ------------------------------------------------------------------ migration 0009 on a database with rows

def _fill_0008(conn):
    """Rows in every table, as 0008 left them; in each table the row with the largest id is last."""
    def insert(table, timestamps=True, **values):
        if timestamps:
            values.update(created_at=NOW, updated_at=NOW, version=1)
        columns = ", ".join(f'"{c}"' for c in values)
        conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)

    for i in (1, 2, 5):
        insert("organizations", id=i, name=f"O{i}", slug=f"o{i}", enabled=True, quota_usage=0)
    insert("organizational_units", id=3, organization_id=1, name="root", path="/root", ancestry="/3/",
           policies="{}")
    insert("organizational_units", id=7, organization_id=1, parent_id=3, name="sub", path="/root/sub",
           ancestry="/3/7/", policies='{"x": 1}')
    insert("organizational_units", id=2, organization_id=1, parent_id=7, name="deep", path="/root/sub/deep",
           ancestry="/3/7/2/", policies="{}")  # a child with a lower id than its parent
    insert("people", id=1, organization_id=1, organizational_unit_id=7, first_name="Ada", facets="{}")
    insert("people", id=4, organization_id=2, first_name="Bob", facets="[]")
    for i, org, person in ((1, 1, 1), (2, None, None), (6, 2, 4)):
        insert("accounts", id=i, email=f"User{i}@Example.com", account_type="personal_account",
               auth_type="password", enabled=True, organization_id=org, person_id=person, preferences="{}",
               failed_login_count=i, password_hash="x")
    insert("account_roles", id=1, account_id=1, name="admin", scopes="{}", info="{}")
    insert("account_roles", id=9, account_id=6, name="ou_manager", scopes='{"ou": [3]}', info="{}",
           scope_organization_id=1)
    insert("api_keys", id=1, account_id=1, name="k1", prefix="p1", key_digest="d1", scopes="[]")
    insert("api_keys", id=3, account_id=6, name="k3", prefix="p3", key_digest="d3", scopes="[]")
    insert("account_sessions", id=1, account_id=1, api_key_id=1, expires_at=NOW, read_only=False)
    insert("account_sessions", id=4, account_id=6, expires_at=NOW, read_only=True)
    insert("refresh_tokens", timestamps=False, id=1, session_id=1, token_digest="t1", created_at=NOW)
    insert("refresh_tokens", timestamps=False, id=8, session_id=4, token_digest="t8", created_at=NOW)
    for i in (1, 2, 11):
        insert("audit_events", id=i, action="create", resource_type="accounts", resource_id=str(i),
               changes="{}", actor_account_id=1)
    insert("groups", id=1, name="g1", organization_id=1, roles="[]")
    insert("groups", id=3, name="g3", organization_id=2, roles='[{"name": "viewer"}]')
    for group, account in ((1, 1), (1, 6), (3, 6)):
        insert("group_members", timestamps=False, group_id=group, account_id=account, created_at=NOW)
    insert("invitations", id=2, email="a@example.com", organization_id=1, roles="[]", expires_at=NOW,
           token_digest="i2")
    insert("invitations", id=5, email="b@example.com", organization_id=2, roles="[]", expires_at=NOW,
           invited_by_id=1)
    insert("settings", id=1, key="a", value='"1"')
    insert("settings", id=4, key="b", value="null")
    if conn.dialect.name == "postgresql":  # explicit ids leave a sequence behind; the app never writes any
        for table in ID_TABLES_0008:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"))


def _snapshot(conn):
    """Every row (with SQLite storage classes), foreign key and index of every table."""
    sqlite = conn.dialect.name == "sqlite"
    inspector = inspect(conn)
    tables = sorted(set(inspector.get_table_names()) - {"alembic_version"})
    rows, fks, indexes = {}, {}, {}
    for table in tables:
        columns = [c["name"] for c in inspector.get_columns(table)]
        select = ", ".join(f'"{c}"' + (f', typeof("{c}")' if sqlite else "") for c in columns)
        rows[table] = sorted(map(tuple, conn.execute(text(f'SELECT {select} FROM "{table}"')).all()), key=repr)
        fks[table] = sorted(map(repr, inspector.get_foreign_keys(table)))
        if sqlite:  # the inspector skips expression indexes on SQLite: read them from the schema
            indexes[table] = sorted(map(tuple, conn.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"), {"t": table})))
        else:
            indexes[table] = sorted(i["name"] for i in inspector.get_indexes(table))
    return rows, fks, indexes


def test_0009_keeps_every_row_index_and_foreign_key_and_ids_then_only_grow(migration_app):
    with migration_app.app_context():
        upgrade(revision="0008")
        with db.engine.begin() as conn:
            _fill_0008(conn)
        with db.engine.connect() as conn, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            before = _snapshot(conn)
        upgrade(revision="0009")
        with db.engine.connect() as conn, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            after = _snapshot(conn)
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # the app's listener
                leftovers = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE name LIKE '%0009%'").all()
                assert leftovers == []
                sequences = dict(conn.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all())
                assert sequences == {"organizations": 5, "organizational_units": 7, "people": 4, "accounts": 6,
                                     "account_roles": 9, "api_keys": 3, "account_sessions": 4,
                                     "refresh_tokens": 8, "audit_events": 11, "groups": 3, "invitations": 5,
                                     "settings": 4}
        assert after[0] == before[0]  # every row, every value, every storage class
        assert after[1] == before[1]  # every foreign key (names, columns, ON DELETE)
        assert after[2] == before[2]  # every index, uq_accounts_email_lower included
        assert sum(len(r) for r in after[0].values()) == 31 and all(after[0].values())
        assert any(name == "uq_accounts_email_lower" or name[0] == "uq_accounts_email_lower"
                   for name in after[2]["accounts"])

        # The case-insensitive unique email index still refuses a duplicate.
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO accounts (email, account_type, auth_type, enabled, preferences, created_at, "
                "updated_at, version) VALUES ('USER1@example.COM', 'personal_account', 'password', true, '{}', "
                ":now, :now, 1)"), {"now": NOW})
        # Foreign keys are still enforced, and still cascade.
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text("INSERT INTO account_roles (account_id, name, scopes, info, created_at, updated_at, "
                              "version) VALUES (999, 'x', '{}', '{}', :now, :now, 1)"), {"now": NOW})

        # Delete the newest row of a table and create another: its id is higher.
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM organizations WHERE id = 5"))
            conn.execute(text("DELETE FROM account_roles WHERE id = 9"))
            conn.execute(text("DELETE FROM audit_events WHERE id = 11"))
            new_org = conn.execute(text(
                "INSERT INTO organizations (name, slug, enabled, quota_usage, created_at, updated_at, version) "
                "VALUES ('N', 'n', true, 0, :now, :now, 1) RETURNING id"), {"now": NOW}).scalar()
            new_role = conn.execute(text(
                "INSERT INTO account_roles (account_id, name, scopes, info, created_at, updated_at, version) "
                "VALUES (1, 'viewer', '{}', '{}', :now, :now, 1) RETURNING id"), {"now": NOW}).scalar()
            new_event = conn.execute(text(
                "INSERT INTO audit_events (action, changes, created_at, updated_at, version) "
                "VALUES ('x', '{}', :now, :now, 1) RETURNING id"), {"now": NOW}).scalar()
        if sqlite:
            assert (new_org, new_role, new_event) == (6, 10, 12)
        assert new_org > 5 and new_role > 9 and new_event > 11

        with db.engine.begin() as conn:  # deleting an account still cascades to what hangs on it
            conn.execute(text("DELETE FROM accounts WHERE id = 6"))
            for table in ("account_roles", "api_keys", "account_sessions", "group_members"):
                assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE account_id = 6")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM refresh_tokens")).scalar() == 1

def test_0009_rolls_back_entirely_when_a_foreign_key_is_broken(tmp_path, capfd):
    """SQLite: an orphan row (written with foreign keys off, by something else than the app) stops
    the migration after the rebuild: everything is rolled back, the database stays at 0008."""
    path = tmp_path / "orphan.db"
    app = create_app({"TESTING": True, "IAM_DATABASE_URL": f"sqlite:///{path}"})
    with app.app_context():
        upgrade(revision="0008")
        with db.engine.begin() as conn:
            _fill_0008(conn)
            before = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master").all())
        db.engine.dispose()
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(f"INSERT INTO api_keys (id, account_id, name, prefix, key_digest, scopes, created_at, "
                    f"updated_at, version) VALUES (50, 404, 'orphan', 'p', 'd50', '[]', '{NOW}', '{NOW}', 1)")
        raw.commit()
        raw.close()
        with pytest.raises(SystemExit):  # flask_migrate logs the RuntimeError and exits
            upgrade()
        assert "0009: foreign key violations (table, rowid, parent, fk): [('api_keys', 50, 'accounts', 0)]" \
            in capfd.readouterr().err  # alembic.ini's logging writes to stderr
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0008"
            assert dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master").all()) == before
            assert conn.exec_driver_sql("SELECT count(*) FROM account_roles").scalar() == 2
            assert conn.exec_driver_sql("SELECT count(*) FROM api_keys").scalar() == 3
        db.engine.dispose()


# ------------------------------------------------------------------ over HTTP, on both databases

def _create(admin, path, type_, **attributes):
    return int(assert_jsonapi(admin.post(path, {"data": {"type": type_, "attributes": attributes}}), 201)
               ["data"]["id"])


def test_a_deleted_organizations_id_is_never_handed_out_again(admin):
    first = _create(admin, "/organizations", "organizations", name="Nine", slug="nine")
    assert admin.delete(f"/organizations/{first}").status_code == 204
    second = _create(admin, "/organizations", "organizations", name="Ten", slug="ten")
    assert second > first


def test_a_deleted_accounts_id_is_never_handed_out_again(admin):
    first = _create(admin, "/accounts", "accounts", email="first@example.com")
    assert admin.delete(f"/accounts/{first}").status_code == 204
    second = _create(admin, "/accounts", "accounts", email="second@example.com")
    assert second > first


def test_a_deleted_account_roles_id_is_never_handed_out_again(admin, factory):
    account = factory.account(email="holder@example.com")
    first = _create(admin, "/account_roles", "account_roles", name="viewer", account_id=account.id)
    assert admin.delete(f"/account_roles/{first}").status_code == 204
    second = _create(admin, "/account_roles", "account_roles", name="viewer", account_id=account.id)
    assert second > first

    # Removed through the relationship: PATCH /accounts/:id/relationships/roles with the others only.
    path = f"/accounts/{account.id}/relationships/roles"
    assert admin.patch(path, {"data": []}).status_code == 204
    new = {"type": "account_roles", "attributes": {"name": "editor", "scopes": {}}}
    assert admin.patch(path, {"data": [new]}).status_code == 204
    (third,) = [int(r["id"]) for r in assert_jsonapi(admin.get(f"/accounts/{account.id}/roles"), 200)["data"]]
    assert third > second
