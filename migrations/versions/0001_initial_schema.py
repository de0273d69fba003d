"""Initial schema: organizations, units, people, accounts, roles, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the model types as they were at this revision.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def TS():  # noqa: N802 - reads like a type in the column lists below
    return sa.DateTime(timezone=True)


def common_columns():
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS(), nullable=False),
        sa.Column("updated_at", TS(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    ]


def upgrade():
    op.create_table(
        "organizations",
        *common_columns(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("quota_limit", sa.Integer(), nullable=True),
        sa.Column("quota_usage", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("slug", name="uq_organizations_slug"),
    )
    op.create_table(
        "organizational_units",
        *common_columns(),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("ancestry", sa.String(1024), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("policies", JSON, nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name="fk_organizational_units_organization_id_organizations"),
        sa.ForeignKeyConstraint(["parent_id"], ["organizational_units.id"],
                                name="fk_organizational_units_parent_id_organizational_units"),
        sa.PrimaryKeyConstraint("id", name="pk_organizational_units"),
        sa.UniqueConstraint("organization_id", "path", name="uq_organizational_units_org_path"),
    )
    op.create_index("ix_organizational_units_organization_id", "organizational_units", ["organization_id"])
    op.create_index("ix_organizational_units_parent_id", "organizational_units", ["parent_id"])
    # Prefix LIKE on ancestry ("this unit and below"): pattern ops on PostgreSQL so any collation uses it.
    op.create_index("ix_organizational_units_ancestry", "organizational_units", ["ancestry"],
                    postgresql_ops={"ancestry": "varchar_pattern_ops"})

    op.create_table(
        "people",
        *common_columns(),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("organizational_unit_id", sa.Integer(), nullable=True),
        sa.Column("first_name", sa.String(255), nullable=True),
        sa.Column("middle_name", sa.String(255), nullable=True),
        sa.Column("last_name", sa.String(255), nullable=True),
        sa.Column("picture_url", sa.String(2048), nullable=True),
        sa.Column("gender", sa.String(64), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("secondary_email", sa.String(320), nullable=True),
        sa.Column("contact_number", sa.String(64), nullable=True),
        sa.Column("physical_address", sa.Text(), nullable=True),
        sa.Column("facets", JSON, nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name="fk_people_organization_id_organizations"),
        sa.ForeignKeyConstraint(["organizational_unit_id"], ["organizational_units.id"],
                                name="fk_people_organizational_unit_id_organizational_units"),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
    )
    op.create_index("ix_people_organization_id", "people", ["organization_id"])
    op.create_index("ix_people_organizational_unit_id", "people", ["organizational_unit_id"])

    op.create_table(
        "accounts",
        *common_columns(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("account_type", sa.String(32), nullable=False),
        sa.Column("auth_type", sa.String(32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("expires_at", TS(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("preferences", JSON, nullable=False),
        sa.Column("consent_given_at", TS(), nullable=True),
        sa.Column("last_login_at", TS(), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("password_reset_token_digest", sa.String(64), nullable=True),
        sa.Column("password_reset_token_expires_at", TS(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name="fk_accounts_organization_id_organizations"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_accounts_person_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("password_reset_token_digest", name="uq_accounts_password_reset_token_digest"),
        sa.UniqueConstraint("person_id", name="uq_accounts_person_id"),
    )
    op.create_index("ix_accounts_organization_id", "accounts", ["organization_id"])
    # Emails are unique and compared case-insensitively: one functional index does both.
    op.create_index("uq_accounts_email_lower", "accounts", [sa.text("lower(email)")], unique=True)

    op.create_table(
        "account_roles",
        *common_columns(),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("info", JSON, nullable=False),
        sa.Column("not_before", TS(), nullable=True),
        sa.Column("expires_at", TS(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_account_roles_account_id_accounts",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_account_roles"),
    )
    op.create_index("ix_account_roles_account_id", "account_roles", ["account_id"])
    op.create_index("ix_account_roles_name", "account_roles", ["name"])

    op.create_table(
        "api_keys",
        *common_columns(),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_digest", sa.String(64), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("expires_at", TS(), nullable=True),
        sa.Column("revoked_at", TS(), nullable=True),
        sa.Column("last_used_at", TS(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_api_keys_account_id_accounts",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_digest", name="uq_api_keys_key_digest"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])


def downgrade():
    op.drop_table("api_keys")
    op.drop_table("account_roles")
    op.drop_table("accounts")
    op.drop_table("people")
    op.drop_table("organizational_units")
    op.drop_table("organizations")
