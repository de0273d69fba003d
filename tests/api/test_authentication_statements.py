"""Authentication is one statement on every endpoint (issue 12).

Every route of /api/v3/iam is called with every method it takes, as an account holding a
direct role and a group's role. The statements sent before the request knows its caller
(before `g.principal` is set) are what authentication cost. Each must be exactly one
statement for every endpoint that authenticates, and no endpoint may authenticate twice.
Transaction control (SQLite's explicit BEGIN) is not counted; no ping is sent either.

A session's first request of a minute also records its last use (a second statement, at
most once a minute): the sessions here were used a moment ago, as a client's would be.
"""
import re

import pytest
from flask import g, request_finished
from sqlalchemy import event

from iam.extensions import db
from iam.models import Group, group_members
from tests.helpers import API, ApiClient

# Routes whose views are public: they never authenticate a bearer token.
PUBLIC = {
    "/auth/login", "/auth/api/login", "/auth/refresh", "/account/passwords/request_reset", "/account/passwords/reset",
    "/account/passwords/token_valid", "/account/email/confirm", "/invitations/accept", "/openapi.json", "/docs",
    "/docs/init.js", "/docs/static/<path:filename>", "/auth/login_url",
    "/auth/sso/start", "/auth/sso/callback", "/auth/sso/exchange", "/auth/mfa", "/auth/mfa/challenge",
}
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
MISSING_ID = "987654"


@pytest.fixture
def caller(app, factory):
    """An ApiClient whose account holds a direct role and, through a group, another."""
    org = factory.organization()
    account = factory.account(email="counted@example.com", organization_id=org.id,
                              roles=[{"name": "org_admin", "scopes": {"organization": [org.id]}}])
    with app.app_context():
        group = Group(name="Counted", organization_id=org.id, roles=[{"name": "auditor", "scopes": {}}])
        db.session.add(group)
        db.session.flush()
        db.session.execute(group_members.insert().values(group_id=group.id, account_id=account.id))
        db.session.commit()
    return ApiClient(app.test_client(), factory.token(account))


def _routes(app):
    """(method, rule, URL) for every route of the API; logging out comes last (it ends the session)."""
    rules = sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule.endswith("/auth/logout"))
    for rule in rules:
        if not rule.rule.startswith(API + "/"):
            continue
        path = rule.rule[len(API):]
        for method in sorted(rule.methods - {"OPTIONS", "HEAD"}):
            yield method, path, re.sub(r"<(?:\w+:)?\w+>", MISSING_ID, path)


def test_authentication_is_one_statement_on_every_endpoint(app, caller, count_queries):
    with app.app_context():
        engine = db.engine
    before_principal = []

    def listener(conn, cursor, statement, *args):
        if "principal" not in g and not statement.lstrip().upper().startswith(CONTROL):
            before_principal.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    checked, public = [], []
    try:
        for method, path, target in _routes(app):
            before_principal.clear()
            seen = {}

            def remember(sender, **extra):
                seen["principal"] = g.get("principal")

            body = {"data": {}} if method in ("POST", "PATCH", "PUT", "DELETE") else None
            request_finished.connect(remember, app)
            try:
                response = caller.client.open(
                    API + target, method=method, headers=caller.headers(body=body is not None),
                    data=None if body is None else '{"data": {}}')
            finally:
                request_finished.disconnect(remember, app)
            assert response.status_code < 500, (method, path, response.status_code, response.get_data(as_text=True))
            if path in PUBLIC:
                public.append((method, path))
                continue
            assert seen.get("principal") is not None, (method, path, response.status_code)
            assert len(before_principal) == 1, (method, path, before_principal)
            assert "account_sessions" in before_principal[0] and "group_members" in before_principal[0]
            checked.append((method, path))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    # The survey covered the API: every resource's collection and item routes, /accounts/me.
    paths = {path for _, path in checked}
    assert {"/accounts", "/accounts/<int:id>", "/accounts/me", "/groups", "/api_keys", "/account_sessions",
            "/audit_events", "/invitations/<int:id>", "/auth/logout"} <= paths, sorted(paths)
    assert len(checked) > 60, len(checked)


def test_the_principal_statement_reads_direct_and_group_roles(app, caller, count_queries):
    with count_queries() as statements:
        response = caller.get("/accounts/me")
    body = response.get_json()
    assert response.status_code == 200, body
    roles = sorted((role["name"], role["source"]) for role in body["meta"]["effective_roles"])
    assert roles == [("auditor", "group"), ("org_admin", "direct")]
    # authentication 1, and /accounts/me renders the account authentication read: nothing else
    assert len(statements) == 1, statements


def test_an_account_with_no_role_and_no_group_authenticates_in_one_statement(user, count_queries):
    with count_queries() as statements:
        body = user.get("/accounts/me").get_json()
    assert body["meta"]["effective_roles"] == [] and body["data"]["attributes"]["email"] == "plain@example.com"
    assert len(statements) == 1, statements
