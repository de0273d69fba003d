"""Ids are never reused: SQLite tables get INTEGER PRIMARY KEY AUTOINCREMENT.

Without AUTOINCREMENT SQLite hands out max(id)+1, so deleting the newest row and creating
another reuses its id, and audit events, outside systems and client caches take the new row
for the deleted one. PostgreSQL never reuses a sequence value: there this migration does
nothing (every integer `id` there is a SERIAL with its own sequence, checked by
tests/test_id_reuse.py).

SQLite cannot add AUTOINCREMENT to an existing column, so every table is rebuilt, inside the
migration's transaction (alembic's, begun IMMEDIATE by the app's listener), with foreign
keys left as they are (the app turns them ON per connection, and PRAGMA foreign_keys cannot
change inside a transaction):

1. The DDL of every table, index and trigger is read from sqlite_master. Each table with a
   single `id INTEGER NOT NULL` column and a `CONSTRAINT pk_<table> PRIMARY KEY (id)` gets the
   same DDL with the key moved onto the column: `id INTEGER NOT NULL CONSTRAINT pk_<table>
   PRIMARY KEY AUTOINCREMENT` (SQLite accepts AUTOINCREMENT on a column constraint only).
   Nothing else in the text changes: columns, types, defaults, constraint names, foreign keys
   and their ON DELETE actions stay byte for byte. A DDL that does not match exactly once
   stops the migration (nothing is changed).
2. PRAGMA defer_foreign_keys=ON: foreign keys are checked when the transaction commits (the
   pragma ends with it), not statement by statement.
3. Every row is copied into a holding table (`_0009_hold_<table>`, no constraints).
4. The tables are dropped children first. With foreign keys ON a DROP TABLE deletes its
   rows first and would run ON DELETE CASCADE / SET NULL on the tables referencing it; but
   every table referencing it has already been dropped, so no action reaches any row.
5. The tables are created again parents first from the DDL of step 1, their rows copied back
   with their ids, then every index (expression and partial ones such as
   uq_accounts_email_lower included: SQLAlchemy cannot reflect those, so they are re-run from
   their stored SQL, never regenerated) and trigger is created again.
6. sqlite_sequence gets, for each table, the largest id it holds (or the sequence it already
   had, if larger). Ids of rows deleted before this migration and above the current largest
   id were never recorded anywhere: those alone may be handed out once more.
7. Checks before commit, any failure raising (the whole transaction rolls back, the database
   stays at 0008): every table has the same columns, foreign keys and indexes as before, holds
   exactly the rows it held (values and storage classes, compared both ways), and
   PRAGMA foreign_key_check finds nothing (a violation that predated the migration stops it
   too: fix that row and run the upgrade again).

group_members has no `id` and keeps its DDL; it is rebuilt only because it references
accounts and groups (step 4). Running the upgrade on tables that already have AUTOINCREMENT
does nothing.

Downgrade does nothing: AUTOINCREMENT only stops SQLite from reusing ids, which every earlier
revision's code is indifferent to, and rebuilding the tables back would only bring id reuse
back. (Downgrading further works as before: tables are rebuilt or dropped by the earlier
migrations.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

HOLD = "_0009_hold_"

_PK = re.compile(r",\s*CONSTRAINT\s+(\"?\w+\"?)\s+PRIMARY\s+KEY\s*\(\s*\"?id\"?\s*\)", re.IGNORECASE)
_ID = re.compile(r"(?<=[(,])(\s*\"?id\"?\s+INTEGER\s+NOT\s+NULL)(?=\s*,)", re.IGNORECASE)


def _quote(name):
    return '"' + name.replace('"', '""') + '"'


def autoincrement_ddl(table, sql):
    """`sql` (a CREATE TABLE of sqlite_master) with its `id` key made AUTOINCREMENT; None if it
    already is. Raises if the DDL is not the one this migration knows how to rewrite."""
    if re.search(r"\bAUTOINCREMENT\b", sql, re.IGNORECASE):
        return None
    pks, ids = _PK.findall(sql), _ID.findall(sql)
    if len(pks) != 1 or len(ids) != 1:
        raise RuntimeError(f"0009: cannot rewrite the DDL of {table} to AUTOINCREMENT "
                           f"({len(pks)} primary key constraint(s) on id, {len(ids)} id column(s)): {sql}")
    sql = _PK.sub("", sql, count=1)
    return _ID.sub(lambda m: f"{m.group(1)} CONSTRAINT {pks[0]} PRIMARY KEY AUTOINCREMENT", sql, count=1)


def _rows(conn, sql, **params):
    return conn.execute(sa.text(sql), params).all()


def _pragma(conn, name, table):
    return [tuple(row) for row in conn.exec_driver_sql(f"PRAGMA {name}({_quote(table)})").all()]


def _shape(conn, table):
    """What must be the same before and after: columns, foreign keys, indexes (with their SQL)."""
    indexes = sorted((row[1], row[2], row[3], row[4]) for row in _pragma(conn, "index_list", table))
    index_sql = sorted(tuple(r) for r in _rows(
        conn, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t", t=table))
    columns = [row[1:] for row in _pragma(conn, "table_info", table)]  # name, type, notnull, default, pk
    return columns, _pragma(conn, "foreign_key_list", table), indexes, index_sql


def _children_first(conn, tables):
    """`tables` ordered so that every table comes before each table it references."""
    refs = {t: {row[2] for row in _pragma(conn, "foreign_key_list", t)} - {t} for t in tables}
    order, done = [], set()
    while len(order) < len(tables):
        ready = [t for t in tables if t not in done and not any(t in refs[o] for o in tables if o not in done)]
        if not ready:
            raise RuntimeError(f"0009: foreign keys form a cycle among {sorted(set(tables) - done)}")
        for t in sorted(ready):
            order.append(t)
            done.add(t)
    return order


def _same_rows(conn, a, b, columns):
    """True if tables a and b hold the same rows: values and storage classes, both ways."""
    select = ", ".join(f"{_quote(c)}, typeof({_quote(c)})" for c in columns)
    for x, y in ((a, b), (b, a)):
        if conn.exec_driver_sql(
                f"SELECT count(*) FROM (SELECT {select} FROM {_quote(x)} EXCEPT SELECT {select} FROM {_quote(y)})"
        ).scalar():
            return False
    count = "SELECT count(*) FROM {}"
    return conn.exec_driver_sql(count.format(_quote(a))).scalar() == conn.exec_driver_sql(
        count.format(_quote(b))).scalar()


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL sequences never hand a value out twice
    tables = {name: sql for name, sql in _rows(
        conn, "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
              "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' AND name != 'alembic_version'")}
    new_ddl = {name: autoincrement_ddl(name, sql) for name, sql in tables.items()
               if any(col[1] == "id" and col[5] == 1 and col[2].upper() == "INTEGER"
                      for col in _pragma(conn, "table_info", name))}
    if not any(new_ddl.values()):
        return
    if not conn.connection.dbapi_connection.in_transaction:
        raise RuntimeError("0009: the rebuild must run inside a transaction")
    if _rows(conn, "SELECT name FROM sqlite_master WHERE type = 'view'"):
        raise RuntimeError("0009: views exist; this migration does not know how to keep them")

    order = _children_first(conn, sorted(tables))
    before = {t: _shape(conn, t) for t in order}
    columns = {t: [c[0] for c in before[t][0]] for t in order}
    indexes = [sql for table, sql in _rows(conn, "SELECT tbl_name, sql FROM sqlite_master "
                                                "WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
               if table in tables]  # explicit indexes (expression, partial ones too); not the autoindexes
    triggers = [s for n, s in _rows(conn, "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
                if n in tables]
    sequences = dict(_rows(conn, "SELECT name, seq FROM sqlite_sequence")) if _rows(
        conn, "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'") else {}

    conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    for t in order:
        conn.exec_driver_sql(f"CREATE TABLE {_quote(HOLD + t)} AS SELECT * FROM {_quote(t)}")
        if not _same_rows(conn, t, HOLD + t, columns[t]):
            raise RuntimeError(f"0009: the copy of {t} differs from it")
    for t in order:  # children first: no ON DELETE action can reach a row
        conn.exec_driver_sql(f"DROP TABLE {_quote(t)}")
    for t in reversed(order):  # parents first
        conn.exec_driver_sql(new_ddl.get(t) or tables[t])
        names = ", ".join(_quote(c) for c in columns[t])
        conn.exec_driver_sql(f"INSERT INTO {_quote(t)} ({names}) SELECT {names} FROM {_quote(HOLD + t)}")
    for sql in indexes:
        conn.exec_driver_sql(sql)
    for sql in triggers:
        conn.exec_driver_sql(sql)

    for t in new_ddl:
        largest = conn.exec_driver_sql(f"SELECT max(id) FROM {_quote(t)}").scalar() or 0
        seq = max(largest, sequences.get(t) or 0)
        conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": t})
        conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)"), {"t": t, "seq": seq})

    for t in order:
        if _shape(conn, t) != before[t]:
            raise RuntimeError(f"0009: {t} lost columns, foreign keys or indexes: {before[t]} != {_shape(conn, t)}")
        if not _same_rows(conn, t, HOLD + t, columns[t]):
            raise RuntimeError(f"0009: {t} does not hold the rows it held")
    for t in order:
        conn.exec_driver_sql(f"DROP TABLE {_quote(HOLD + t)}")
    violations = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if violations:
        raise RuntimeError(f"0009: foreign key violations (table, rowid, parent, fk): {violations[:20]}")


def downgrade():
    """Nothing: the tables keep AUTOINCREMENT (see the module docstring)."""
