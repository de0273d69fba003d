"""The OpenID Provider's sign-in: authorization codes, consents, and on account_sessions the
browser session of the sign-in pages (browser_digest) and an application's session
(oauth_client_id, parent_id, oauth_scope); accounts.email_verified_at (the ID token's email_verified).

The new account_sessions columns are plain ADD COLUMNs; on SQLite (no ALTER TABLE ADD
CONSTRAINT) their foreign keys are declared in the column (REFERENCES, allowed for a column
whose default is NULL), on PostgreSQL as named constraints.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _session_reference(column, table, ondelete):
    sqlite = op.get_bind().dialect.name == "sqlite"
    name = f"fk_account_sessions_{column}_{table}"
    if sqlite:
        # Unnamed to reflection (iam/extensions.SQLITE_INLINE_FOREIGN_KEYS), enforced all the same.
        op.execute(f"ALTER TABLE account_sessions ADD COLUMN {column} INTEGER "
                   f"REFERENCES {table} (id) ON DELETE {ondelete}")
    else:
        op.add_column("account_sessions", sa.Column(column, sa.Integer(), nullable=True))
        op.create_foreign_key(name, "account_sessions", table, [column], ["id"], ondelete=ondelete)
    op.create_index(f"ix_account_sessions_{column}", "account_sessions", [column])


def upgrade():
    op.create_table(
        "oauth_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("browser_session_id", sa.Integer(), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(512), nullable=False),
        sa.Column("nonce", sa.String(512), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("code_challenge_method", sa.String(8), nullable=True),
        sa.Column("amr", JSON, nullable=False),
        sa.Column("auth_time", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.Column("issued_session_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"],
                                name="fk_oauth_codes_client_id_oauth_clients", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name="fk_oauth_codes_account_id_accounts", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["browser_session_id"], ["account_sessions.id"],
                                name="fk_oauth_codes_browser_session_id_account_sessions",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["issued_session_id"], ["account_sessions.id"],
                                name="fk_oauth_codes_issued_session_id_account_sessions",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_codes"),
        sa.UniqueConstraint("code_digest", name="uq_oauth_codes_code_digest"),
        sqlite_autoincrement=True,
    )
    for column in ("client_id", "account_id", "browser_session_id", "expires_at", "issued_session_id"):
        op.create_index(f"ix_oauth_codes_{column}", "oauth_codes", [column])
    op.create_table(
        "oauth_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name="fk_oauth_consents_account_id_accounts", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"],
                                name="fk_oauth_consents_client_id_oauth_clients", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_consents"),
        sa.UniqueConstraint("account_id", "client_id", name="uq_oauth_consents_account_id_client_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_oauth_consents_client_id", "oauth_consents", ["client_id"])
    op.add_column("account_sessions", sa.Column("browser_digest", sa.String(64), nullable=True))
    op.create_index("ix_account_sessions_browser_digest", "account_sessions", ["browser_digest"], unique=True)
    _session_reference("oauth_client_id", "oauth_clients", "CASCADE")
    _session_reference("parent_id", "account_sessions", "SET NULL")
    op.add_column("account_sessions", sa.Column("oauth_scope", sa.String(512), nullable=True))
    op.add_column("accounts", sa.Column("email_verified_at", TIMESTAMP, nullable=True))


def downgrade():
    op.drop_column("accounts", "email_verified_at")
    op.drop_column("account_sessions", "oauth_scope")
    for column in ("parent_id", "oauth_client_id"):
        op.drop_index(f"ix_account_sessions_{column}", "account_sessions")
        if op.get_bind().dialect.name != "sqlite":
            op.drop_constraint(f"fk_account_sessions_{column}_"
                               f"{'account_sessions' if column == 'parent_id' else 'oauth_clients'}",
                               "account_sessions", type_="foreignkey")
        op.drop_column("account_sessions", column)
    op.drop_index("ix_account_sessions_browser_digest", "account_sessions")
    op.drop_column("account_sessions", "browser_digest")
    op.drop_table("oauth_consents")
    op.drop_table("oauth_codes")
