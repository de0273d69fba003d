"""Single sign-on: identity providers, their email domains, linked identities, sign-ins in
progress and one-time exchange codes; sessions record how they were authenticated.

- identity_providers: an organization's OpenID Connect provider; the client secret is sealed
  (iam/secret_store.py), never stored in clear.
- provider_domains: an email domain belongs to one provider at most (its key).
- account_identities: an account's subject at a provider, unique per provider.
- sso_attempts, sso_codes: a sign-in sent to a provider and waiting for the callback (the
  state's digest, the browser's, the nonce, the sealed PKCE verifier), and the one-time code
  a browser brings back to an application.
- account_sessions.amr and auth_time: how a session was authenticated and when a factor was
  last proven. Existing sessions were password logins (`["pwd"]`) or API-key logins
  (`["api_key"]`), authenticated when they were opened.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _timestamps():
    return [sa.Column("created_at", TIMESTAMP, nullable=False), sa.Column("updated_at", TIMESTAMP, nullable=False),
            sa.Column("version", sa.Integer(), nullable=False)]


def upgrade():
    op.create_table(
        "identity_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(2048), nullable=False),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("client_secret_sealed", sa.Text(), nullable=True),
        sa.Column("scopes", sa.String(1024), nullable=False),
        sa.Column("email_domains", JSON, nullable=False),
        sa.Column("jit_provisioning", sa.Boolean(), nullable=False),
        sa.Column("default_roles", JSON, nullable=False),
        sa.Column("claim_mapping", JSON, nullable=False),
        sa.Column("enforced", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name="fk_identity_providers_organization_id_organizations", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_identity_providers"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_identity_providers_organization_id", "identity_providers", ["organization_id"])
    op.create_table(
        "provider_domains",
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("identity_provider_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["identity_provider_id"], ["identity_providers.id"],
                                name="fk_provider_domains_identity_provider_id_identity_providers",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("domain", name="pk_provider_domains"),
    )
    op.create_index("ix_provider_domains_identity_provider_id", "provider_domains",
                    ["identity_provider_id"])
    op.create_table(
        "account_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("identity_provider_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("last_login_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_account_identities_account_id_accounts",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_provider_id"], ["identity_providers.id"],
                                name="fk_account_identities_identity_provider_id_identity_providers",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_account_identities"),
        sa.UniqueConstraint("identity_provider_id", "subject", name="uq_account_identities_identity_provider_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_account_identities_account_id", "account_identities", ["account_id"])
    op.create_index("ix_account_identities_identity_provider_id", "account_identities", ["identity_provider_id"])
    op.create_table(
        "sso_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_digest", sa.String(64), nullable=False),
        sa.Column("browser_digest", sa.String(64), nullable=False),
        sa.Column("identity_provider_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier_sealed", sa.Text(), nullable=False),
        sa.Column("return_to", sa.String(2048), nullable=True),
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["identity_provider_id"], ["identity_providers.id"],
                                name="fk_sso_attempts_identity_provider_id_identity_providers", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name="fk_sso_attempts_invitation_id_invitations", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_sso_attempts"),
        sa.UniqueConstraint("state_digest", name="uq_sso_attempts_state_digest"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sso_attempts_identity_provider_id", "sso_attempts", ["identity_provider_id"])
    op.create_index("ix_sso_attempts_expires_at", "sso_attempts", ["expires_at"])
    op.create_table(
        "sso_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["account_sessions.id"],
                                name="fk_sso_codes_session_id_account_sessions", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_sso_codes"),
        sa.UniqueConstraint("code_digest", name="uq_sso_codes_code_digest"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sso_codes_expires_at", "sso_codes", ["expires_at"])
    # account_sessions is not rebuilt on SQLite: plain ADD COLUMN, then the backfill.
    op.add_column("account_sessions", sa.Column("amr", JSON, nullable=True))
    op.add_column("account_sessions", sa.Column("auth_time", TIMESTAMP, nullable=True))
    op.execute("UPDATE account_sessions SET auth_time = created_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""UPDATE account_sessions SET amr = CASE WHEN api_key_id IS NULL THEN '["pwd"]'::jsonb
                      ELSE '["api_key"]'::jsonb END""")
    else:
        op.execute("""UPDATE account_sessions SET amr = CASE WHEN api_key_id IS NULL THEN '["pwd"]'
                      ELSE '["api_key"]' END""")


def downgrade():
    op.drop_column("account_sessions", "auth_time")
    op.drop_column("account_sessions", "amr")
    op.drop_table("sso_codes")
    op.drop_table("sso_attempts")
    op.drop_table("account_identities")
    op.drop_table("provider_domains")
    op.drop_table("identity_providers")
