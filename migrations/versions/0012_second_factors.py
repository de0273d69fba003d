"""Second factors: mfa_factors (TOTP, passkeys, recovery-code sets), mfa_recovery_codes (as
digests), mfa_challenges (a sign-in waiting for its second factor, a step-up in progress);
account_sessions.mfa_at (when a second factor was last proven) and enrollment_only (a session
that may only enrol one); organizations.policies (an mfa_required there applies to every member).

account_sessions is not rebuilt on SQLite: plain ADD COLUMN.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "mfa_factors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.String(1366), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=True),
        sa.Column("transports", JSON, nullable=True),
        sa.Column("challenge", sa.String(128), nullable=True),
        sa.Column("challenge_expires_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_mfa_factors_account_id_accounts",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_mfa_factors"),
        sa.UniqueConstraint("credential_id", name="uq_mfa_factors_credential_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mfa_factors_account_id", "mfa_factors", ["account_id"])
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("factor_id", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["factor_id"], ["mfa_factors.id"], name="fk_mfa_recovery_codes_factor_id_mfa_factors",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_mfa_recovery_codes"),
        sa.UniqueConstraint("code_digest", name="uq_mfa_recovery_codes_code_digest"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mfa_recovery_codes_factor_id", "mfa_recovery_codes", ["factor_id"])
    op.create_table(
        "mfa_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=True),
        sa.Column("sso_code_digest", sa.String(64), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("first_amr", JSON, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("webauthn_challenge", sa.String(128), nullable=True),
        sa.Column("factor_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_mfa_challenges_account_id_accounts",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["session_id"], ["account_sessions.id"],
                                name="fk_mfa_challenges_session_id_account_sessions", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["factor_id"], ["mfa_factors.id"], name="fk_mfa_challenges_factor_id_mfa_factors",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_mfa_challenges"),
        sa.UniqueConstraint("token_digest", name="uq_mfa_challenges_token_digest"),
        sa.UniqueConstraint("sso_code_digest", name="uq_mfa_challenges_sso_code_digest"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mfa_challenges_account_id", "mfa_challenges", ["account_id"])
    op.create_index("ix_mfa_challenges_session_id", "mfa_challenges", ["session_id"])
    op.create_index("ix_mfa_challenges_expires_at", "mfa_challenges", ["expires_at"])
    # organizations.policies: a unit's policies, for every member (the contract's section 4).
    empty = sa.text("'{}'::jsonb") if op.get_bind().dialect.name == "postgresql" else sa.text("'{}'")
    op.add_column("organizations", sa.Column("policies", JSON, nullable=False, server_default=empty))
    op.add_column("account_sessions", sa.Column("mfa_at", TIMESTAMP, nullable=True))
    op.add_column("account_sessions", sa.Column("enrollment_only", sa.Boolean(), nullable=False,
                                                server_default=sa.false()))


def downgrade():
    op.drop_column("account_sessions", "enrollment_only")  # ALTER TABLE DROP COLUMN (SQLite 3.35+)
    op.drop_column("account_sessions", "mfa_at")
    op.drop_column("organizations", "policies")
    op.drop_table("mfa_challenges")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_factors")
