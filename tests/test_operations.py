"""Operator-facing pieces: CLI commands, the bootstrap admin, health checks, configuration."""
import hashlib

import pytest

from iam import config, create_app
from iam.bootstrap import bootstrap_admin
from iam.extensions import db
from iam.models import Account, AccountRole, ApiKey
from tests.helpers import ApiClient, assert_jsonapi, run_dev_admin


def test_create_admin_command_makes_an_admin_who_can_log_in(app, client):
    result = app.test_cli_runner().invoke(args=["iam", "create-admin", "ops@example.com"],
                                          input="a good long password\na good long password\n")
    assert result.exit_code == 0, result.output
    body = assert_jsonapi(client.post("/auth/login", {"email": "ops@example.com", "password": "a good long password"}), 200)
    client.token = body["meta"]["token"]
    assert_jsonapi(client.get("/accounts"), 200)


def test_create_admin_refuses_a_short_password(app):
    result = app.test_cli_runner().invoke(args=["iam", "create-admin", "ops@example.com"], input="short\nshort\n")
    assert result.exit_code != 0 and "at least 8" in result.output
    with app.app_context():
        assert db.session.query(Account).count() == 0


def test_create_api_key_prints_the_key_once_and_stores_only_its_digest(app, client, admin_account):
    result = app.test_cli_runner().invoke(args=["iam", "create-api-key", "admin@example.com", "nightly sync"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip()
    assert raw.startswith("IAM_") and len(raw) > 40
    with app.app_context():
        key = db.session.query(ApiKey).one()
        assert key.key_digest == hashlib.sha256(raw.encode()).hexdigest()
        assert raw not in (key.prefix, key.key_digest, key.name)
    token = assert_jsonapi(client.post("/auth/api/login", {"api_key": raw}), 200)["meta"]["token"]
    assert_jsonapi(ApiClient(app.test_client(), token).get("/accounts"), 200)


def test_create_api_key_for_an_unknown_account_fails(app):
    result = app.test_cli_runner().invoke(args=["iam", "create-api-key", "ghost@example.com", "x"])
    assert result.exit_code != 0 and "no account" in result.output


def test_bootstrap_admin_is_created_once(app, client):
    app.config.update(IAM_BOOTSTRAP_ADMIN_EMAIL="boot@example.com", IAM_BOOTSTRAP_ADMIN_PASSWORD="bootstrap password")
    try:
        assert bootstrap_admin(app) is not None
        assert bootstrap_admin(app) is None  # an admin exists now: nothing more is created
    finally:
        app.config.update(IAM_BOOTSTRAP_ADMIN_EMAIL="", IAM_BOOTSTRAP_ADMIN_PASSWORD="")
    with app.app_context():
        assert db.session.query(AccountRole).filter_by(name="admin").count() == 1
    assert_jsonapi(client.post("/auth/login", {"email": "boot@example.com", "password": "bootstrap password"}), 200)


def test_dev_admin_prints_a_working_login(app, client):
    result = run_dev_admin(app)
    with open(app.instance_path + "/dev-admin-password") as fh:
        password = fh.read().strip()
    assert password in result.output and "/accounts/me" in result.output
    assert_jsonapi(client.post("/auth/login", {"email": "admin@example.com", "password": password}), 200)


def test_healthz_and_readyz(client):
    assert client.client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "ok"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    app = create_app({"TESTING": True, "IAM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["database"] == "unreachable"
    assert app.test_client().get("/healthz").status_code == 200


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(config.ConfigError, match="IAM_SECRET_KEY"):
        config.load(str(tmp_path), env={"IAM_ENV": "production"})
    with pytest.raises(config.ConfigError, match="at least 32"):
        config.load(str(tmp_path), env={"IAM_SECRET_KEY": "short"})
    assert config.load(str(tmp_path), env={"IAM_ENV": "development"})["IAM_SECRET_KEY"] == config.DEV_SECRET_KEY


def test_database_urls_are_normalised(tmp_path):
    assert config.database_url("postgresql://u@h/d", "/x") == "postgresql+psycopg://u@h/d"
    assert config.database_url("postgres://u@h/d", "/x") == "postgresql+psycopg://u@h/d"
    assert config.database_url(None, str(tmp_path)) == f"sqlite:///{tmp_path}/iam.db"
