"""Login throttling: failed attempts and lock per account.

Plain ADD/DROP COLUMN, not batch mode: on SQLite a batch rebuild of `accounts` would lose
the lower(email) expression index, which SQLite cannot reflect.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("accounts", sa.Column("failed_login_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("accounts", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("accounts", "locked_until")
    op.drop_column("accounts", "failed_login_count")
