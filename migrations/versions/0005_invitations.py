"""Invitations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def TS():  # noqa: N802
    return sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS(), nullable=False),
        sa.Column("updated_at", TS(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("roles", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("token_digest", sa.String(64), nullable=True),
        sa.Column("sent_at", TS(), nullable=True),
        sa.Column("expires_at", TS(), nullable=False),
        sa.Column("accepted_at", TS(), nullable=True),
        sa.Column("revoked_at", TS(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name="fk_invitations_organization_id_organizations"),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.UniqueConstraint("token_digest", name="uq_invitations_token_digest"),
    )
    op.create_index("ix_invitations_email", "invitations", ["email"])
    op.create_index("ix_invitations_organization_id", "invitations", ["organization_id"])


def downgrade():
    op.drop_table("invitations")
