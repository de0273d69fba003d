"""The OpenID Provider's registered applications (oauth_clients) and signing keys (signing_keys).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("client_type", sa.String(16), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=True),
        sa.Column("redirect_uris", JSON, nullable=False),
        sa.Column("post_logout_redirect_uris", JSON, nullable=False),
        sa.Column("grant_types", JSON, nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("token_endpoint_auth_method", sa.String(32), nullable=False),
        sa.Column("require_consent", sa.Boolean(), nullable=False),
        sa.Column("service_account_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name="fk_oauth_clients_organization_id_organizations", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_account_id"], ["accounts.id"],
                                name="fk_oauth_clients_service_account_id_accounts", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_clients"),
        sa.UniqueConstraint("client_id", name="uq_oauth_clients_client_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_oauth_clients_organization_id", "oauth_clients", ["organization_id"])
    op.create_index("ix_oauth_clients_service_account_id", "oauth_clients", ["service_account_id"])
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(8), nullable=False),
        sa.Column("private_sealed", sa.Text(), nullable=False),
        sa.Column("public_jwk", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("retired_at", TIMESTAMP, nullable=True),
        sa.Column("published_until", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_signing_keys"),
        sa.UniqueConstraint("kid", name="uq_signing_keys_kid"),
        sqlite_autoincrement=True,
    )


def downgrade():
    op.drop_table("signing_keys")
    op.drop_table("oauth_clients")
