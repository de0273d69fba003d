"""Invitations accepted through an identity provider: invitations.identity_provider_id.

An invitation naming a provider is accepted by signing in through it with the invited email
(contract section 8), not with a password. Deleting the provider revokes its pending
invitations (iam/resources/identity_providers.py); the key of the others becomes NULL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FK = "fk_invitations_identity_provider_id_identity_providers"


def _rebuilt(change):
    """Run `change` on a batch of invitations. SQLite rebuilds the table: its AUTOINCREMENT
    (0009) is asked for again, and its sequence, which dropping the old table forgets, is put
    back, so no id of a deleted invitation is handed out again. Dropping the old table runs the
    ON DELETE actions of the one table referencing it, sso_attempts, whose invitation_id nothing
    could set before this revision."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    seq = bind.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'invitations'")) if sqlite else None
    with op.batch_alter_table("invitations", table_kwargs={"sqlite_autoincrement": True}) as batch:
        change(batch)
    if seq is not None:
        kept = bind.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'invitations'"))
        if kept is None:
            bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('invitations', :seq)"), {"seq": seq})
        elif kept < seq:
            bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'invitations'"), {"seq": seq})


def upgrade():
    def change(batch):
        batch.add_column(sa.Column("identity_provider_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(FK, "identity_providers", ["identity_provider_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_invitations_identity_provider_id", ["identity_provider_id"])
    _rebuilt(change)


def downgrade():
    def change(batch):
        batch.drop_index("ix_invitations_identity_provider_id")
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("identity_provider_id")
    _rebuilt(change)
