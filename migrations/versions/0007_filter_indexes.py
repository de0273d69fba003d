"""Indexes for the filters and sorts the contract names.

- accounts.created_at and accounts.expires_at: `sort=-created_at` and the range filters.
- PostgreSQL only: pg_trgm GIN indexes for the case-insensitive substring filters
  (`email__match`, `search`, the people `__match` filters), which SQLAlchemy renders as
  ILIKE '%...%'. pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may
  create it without being a superuser.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TRIGRAM = (
    ("ix_accounts_email_trgm", "accounts", "email"),
    ("ix_people_first_name_trgm", "people", "first_name"),
    ("ix_people_middle_name_trgm", "people", "middle_name"),
    ("ix_people_last_name_trgm", "people", "last_name"),
    ("ix_people_secondary_email_trgm", "people", "secondary_email"),
    ("ix_people_contact_number_trgm", "people", "contact_number"),
)


def upgrade():
    op.create_index("ix_accounts_created_at", "accounts", ["created_at"])
    op.create_index("ix_accounts_expires_at", "accounts", ["expires_at"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # The extension may already live in another schema than ours (it is per database):
        # name its operator class with that schema, which need not be on our search_path.
        schema = bind.scalar(sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"))
        opclass = f'"{schema}".gin_trgm_ops'
        for name, table, column in TRIGRAM:
            op.create_index(name, table, [column], postgresql_using="gin", postgresql_ops={column: opclass})


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _column in TRIGRAM:
            op.drop_index(name, table_name=table)
        # The extension stays: other objects may use it, and it costs nothing idle.
    op.drop_index("ix_accounts_expires_at", table_name="accounts")
    op.drop_index("ix_accounts_created_at", table_name="accounts")
