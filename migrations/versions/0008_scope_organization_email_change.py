"""Roles remember the organization their `ou` scope was granted in; confirmed email changes.

- account_roles.scope_organization_id: the organization an `ou` scope's units belong to
  when the role is granted. At decision time the scope reaches units of that organization
  only, so a unit created (or moved) later in another organization never widens an old
  grant. Existing roles with an `ou` scope take the organization of the account holding
  them, else that of their lowest existing unit; the rest stay null and reach no unit.
- accounts.pending_email, email_change_token_digest, email_change_expires_at: a
  self-service email change waits for the link mailed to the new address.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
import json
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FK = "fk_account_roles_scope_organization_id_organizations"


def upgrade():
    with warnings.catch_warnings(), op.batch_alter_table("account_roles") as batch:
        # SQLite rebuilds account_roles; reflecting it reflects accounts too, whose lower(email)
        # index SQLAlchemy cannot reflect (and says so). accounts itself is not rebuilt.
        warnings.filterwarnings("ignore", message=".*expression-based index.*")
        batch.add_column(sa.Column("scope_organization_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(FK, "organizations", ["scope_organization_id"], ["id"], ondelete="SET NULL")
    # accounts is not rebuilt (a batch rebuild on SQLite would lose the lower(email) index):
    # plain ADD COLUMN, and the digest's uniqueness as an index.
    op.add_column("accounts", sa.Column("pending_email", sa.String(320), nullable=True))
    op.add_column("accounts", sa.Column("email_change_token_digest", sa.String(64), nullable=True))
    op.add_column("accounts", sa.Column("email_change_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_accounts_email_change_token_digest", "accounts", ["email_change_token_digest"], unique=True)
    _backfill_scope_organizations()


def _backfill_scope_organizations():
    bind = op.get_bind()
    roles = bind.execute(sa.text(
        "SELECT r.id, r.scopes, a.organization_id FROM account_roles r JOIN accounts a ON a.id = r.account_id"
    )).all()
    for role_id, scopes, holder_org in roles:
        if isinstance(scopes, str):  # SQLite hands JSON back as text
            scopes = json.loads(scopes)
        units = [i for i in (scopes or {}).get("ou") or [] if isinstance(i, int)] if isinstance(scopes, dict) else []
        if not units:
            continue
        org = holder_org
        if org is None:
            org = bind.scalar(sa.text(
                "SELECT organization_id FROM organizational_units WHERE id IN :ids ORDER BY id LIMIT 1"
            ).bindparams(sa.bindparam("ids", expanding=True)), {"ids": units})
        if org is not None:
            bind.execute(sa.text("UPDATE account_roles SET scope_organization_id = :org WHERE id = :id"),
                         {"org": org, "id": role_id})


def downgrade():
    op.drop_index("uq_accounts_email_change_token_digest", table_name="accounts")
    for column in ("email_change_expires_at", "email_change_token_digest", "pending_email"):
        op.drop_column("accounts", column)  # ALTER TABLE DROP COLUMN (SQLite 3.35+): no rebuild
    with warnings.catch_warnings(), op.batch_alter_table("account_roles") as batch:
        warnings.filterwarnings("ignore", message=".*expression-based index.*")
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("scope_organization_id")
