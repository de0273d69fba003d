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


def upgrade():
    with op.batch_alter_table("invitations") as batch:
        batch.add_column(sa.Column("identity_provider_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(FK, "identity_providers", ["identity_provider_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_invitations_identity_provider_id", ["identity_provider_id"])


def downgrade():
    with op.batch_alter_table("invitations") as batch:
        batch.drop_index("ix_invitations_identity_provider_id")
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("identity_provider_id")
