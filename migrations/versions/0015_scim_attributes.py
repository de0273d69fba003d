"""What SCIM provisions (contract section 11) and the JSON:API did not store: accounts.external_id,
user_name (a userName that is not the email) and manager_id (the enterprise extension's manager), people.display_name, employee_number and
department, groups.external_id.

Plain ADD COLUMNs; on SQLite the foreign key of accounts.manager_id is declared in the column
(iam/extensions.SQLITE_INLINE_FOREIGN_KEYS), on PostgreSQL as a named constraint.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FK = "fk_accounts_manager_id_accounts"


def upgrade():
    op.add_column("accounts", sa.Column("external_id", sa.String(255), nullable=True))
    op.add_column("accounts", sa.Column("user_name", sa.String(320), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE accounts ADD COLUMN manager_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL")
    else:
        op.add_column("accounts", sa.Column("manager_id", sa.Integer(), nullable=True))
        op.create_foreign_key(FK, "accounts", "accounts", ["manager_id"], ["id"], ondelete="SET NULL")
    op.create_index("ix_accounts_manager_id", "accounts", ["manager_id"])
    op.add_column("people", sa.Column("display_name", sa.String(255), nullable=True))
    op.add_column("people", sa.Column("employee_number", sa.String(64), nullable=True))
    op.add_column("people", sa.Column("department", sa.String(255), nullable=True))
    op.add_column("groups", sa.Column("external_id", sa.String(255), nullable=True))


def downgrade():
    op.drop_column("groups", "external_id")
    op.drop_column("people", "department")
    op.drop_column("people", "employee_number")
    op.drop_column("people", "display_name")
    op.drop_index("ix_accounts_manager_id", "accounts")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(FK, "accounts", type_="foreignkey")
    op.drop_column("accounts", "manager_id")
    op.drop_column("accounts", "user_name")
    op.drop_column("accounts", "external_id")
