"""`flask --app wsgi iam ...` commands for operators."""
import os
import secrets

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from .auth import passwords
from .auth.tokens import new_api_key
from .bootstrap import admin_exists, create_admin
from .extensions import db
from .models import Account, ApiKey
from .resources.common import digest

iam = AppGroup("iam", help="Administer the IAM server.")


def _check_password(password):
    problem = passwords.policy_problem(password)
    if problem:
        raise click.ClickException(problem)


@iam.command("create-admin")
@click.argument("email")
@click.password_option(help="The password (asked for when not given).")
def create_admin_command(email, password):
    """Create an admin account (or give an existing account the admin role)."""
    _check_password(password)
    account = create_admin(email, password)
    click.echo(f"admin {account.email} (id {account.id}) is ready")


@iam.command("create-api-key")
@click.argument("email")
@click.argument("name")
def create_api_key_command(email, name):
    """Create an API key for EMAIL and print it once (only its digest is stored)."""
    account = db.session.scalars(select(Account).where(func.lower(Account.email) == email.lower())).one_or_none()
    if account is None:
        raise click.ClickException(f"no account with email {email}")
    raw = new_api_key()
    db.session.add(ApiKey(account_id=account.id, name=name, prefix=raw[:8], key_digest=digest(raw), scopes={}))
    db.session.commit()
    click.echo(raw)


@iam.command("reseal-secrets")
def reseal_secrets_command():
    """Seal every stored secret again under the current IAM_ENCRYPTION_KEY.

    Run it after moving the old key to IAM_ENCRYPTION_OLD_KEYS; once it reports nothing left
    under an old key, the old key can go. Values no configured key opens are listed, not changed."""
    from . import secret_store
    from .mfa.codes import MFA_SECRET_PURPOSE
    from .models import IdentityProvider, MfaFactor, SigningKey
    from .oauth.keys import PURPOSE as SIGNING_KEY_PURPOSE
    from .resources.identity_providers import SECRET_PURPOSE

    sealed_columns = ((IdentityProvider, "client_secret_sealed", SECRET_PURPOSE),
                      (MfaFactor, "secret_sealed", MFA_SECRET_PURPOSE),
                      (SigningKey, "private_sealed", SIGNING_KEY_PURPOSE))
    resealed, unopened = 0, []
    for model, column, purpose in sealed_columns:
        for row in db.session.scalars(select(model).where(getattr(model, column).isnot(None))):
            value = getattr(row, column)
            if secret_store.is_current(value):
                continue
            try:
                plain = secret_store.unseal(value, purpose)
            except secret_store.Unsealable as error:
                unopened.append(f"{model.__tablename__} {row.id}: {error}")
                continue
            setattr(row, column, secret_store.seal(plain, purpose))
            resealed += 1
    db.session.commit()
    click.echo(f"resealed {resealed} secret(s) under the current key")
    for line in unopened:
        click.echo(f"not opened: {line}", err=True)
    if unopened:
        raise SystemExit(1)


@iam.command("rotate-signing-key")
def rotate_signing_key_command():
    """Make new signing keys (RS256 and ES256) for the OpenID Provider's tokens. The old keys sign
    no more but stay in the JWKS until every token they signed has expired."""
    from .models import utcnow
    from .oauth import keys

    for row in keys.rotate(utcnow()):
        click.echo(f"new {row.alg} signing key {row.kid}")


@iam.command("dev-admin")
@click.option("--email", default="admin@example.com", show_default=True)
def dev_admin_command(email):
    """Development only: make sure an admin exists and print how to log in.

    The password is generated once and kept in instance/dev-admin-password (mode 600).
    """
    if current_app.config["IAM_ENV"] != "development":
        raise click.ClickException("dev-admin is for IAM_ENV=development only")
    path = os.path.join(current_app.instance_path, "dev-admin-password")
    if not admin_exists():
        password = secrets.token_urlsafe(12)
        create_admin(email, password)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write(password + "\n")
    password = open(path).read().strip() if os.path.exists(path) else "(the one you set)"
    click.echo(f"""
  IAM is starting on http://127.0.0.1:5000/api/v3/iam
  Admin login: {email} / {password}   (also in instance/dev-admin-password)

  TOKEN=$(curl -s -X POST http://127.0.0.1:5000/api/v3/iam/auth/login \\
      -H 'Content-Type: application/json' \\
      -d '{{"email": "{email}", "password": "'"$(cat instance/dev-admin-password)"'"}}' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["meta"]["token"])')
  curl -s http://127.0.0.1:5000/api/v3/iam/accounts/me -H "Authorization: Bearer $TOKEN"

  Sign-in page: http://127.0.0.1:5000/signin
  OpenID Provider: http://127.0.0.1:5000/.well-known/openid-configuration
""")


def register(app):
    app.cli.add_command(iam)
