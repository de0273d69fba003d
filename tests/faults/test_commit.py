"""After a commit nothing may turn the answer into an error (issue 10, finding 8): the answer
document is read and rendered inside the transaction, then the change is committed. A failure
of the COMMIT itself leaves the outcome unknown: 503 `outcome_unknown`, which says to check."""
import re

import pytest
from flask import has_request_context, request
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from iam import mail
from iam.extensions import db
from iam.models import Organization
from tests.faults.helpers import assert_unavailable, organization, tracebacks
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi


def _stored_slugs(app, slug):
    with app.app_context():
        slugs = set(db.session.scalars(select(Organization.slug).where(Organization.slug == slug)))
        db.session.remove()
    return slugs


def _in_a_post(session, port=None):
    return has_request_context() and request.method == "POST" \
        and (port is None or session.get_bind().url.port == port)


def test_a_committed_write_is_answered_201_when_the_database_goes_right_after(app, pg_proxy, make_app, factory,
                                                                            caplog):
    """The connection dies right after the COMMIT succeeded: the answer was built before it."""
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2)
    admin = ApiClient(proxied.test_client(), factory.token(factory.account(roles=["admin"])))
    cut = []

    def cut_after_commit(session):
        if not cut and _in_a_post(session, pg_proxy.port):
            cut.append(True)
            pg_proxy.cut()

    event.listen(Session, "after_commit", cut_after_commit)
    try:
        response = admin.post("/organizations", organization("committed"))
    finally:
        event.remove(Session, "after_commit", cut_after_commit)
        pg_proxy.restore()
    assert cut
    body = assert_jsonapi(response, 201)
    assert body["data"]["attributes"]["slug"] == "committed" and response.headers["ETag"]
    assert _stored_slugs(app, "committed") == {"committed"}
    assert not tracebacks(caplog)


def test_a_committed_write_is_answered_201_when_every_later_statement_would_fail(app, make_app, factory, caplog):
    """Both databases: once the request's COMMIT went through, any further statement fails."""
    writer = make_app()
    admin = ApiClient(writer.test_client(), factory.token(factory.account(roles=["admin"])))
    with writer.app_context():
        engine = db.engine
    committed = []

    def mark(session):
        if _in_a_post(session):
            committed.append(True)

    def fail_after_commit(conn, cursor, statement, parameters, context, executemany):
        if committed:
            raise conn.dialect.loaded_dbapi.OperationalError("database is locked" if conn.dialect.name == "sqlite"
                                                             else "server closed the connection unexpectedly")

    event.listen(Session, "after_commit", mark)
    event.listen(engine, "before_cursor_execute", fail_after_commit)
    try:
        response = admin.post("/organizations", organization("committed"))
        for path, change in (("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "k"}}}),):
            committed.clear()
            created = admin.post(path, change)
            assert_jsonapi(created, 201)
    finally:
        event.remove(Session, "after_commit", mark)
        event.remove(engine, "before_cursor_execute", fail_after_commit)
    assert committed
    body = assert_jsonapi(response, 201)
    assert body["data"]["attributes"]["slug"] == "committed" and response.headers["ETag"]
    assert _stored_slugs(app, "committed") == {"committed"}
    assert not tracebacks(caplog)


def test_a_commit_that_fails_on_the_wire_is_503_outcome_unknown(app, pg_proxy, make_app, factory, caplog):
    """The connection dies as the COMMIT is sent: whether it was applied is unknown."""
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2)
    admin = ApiClient(proxied.test_client(), factory.token(factory.account(roles=["admin"])))
    with proxied.app_context():
        engine = db.engine
    cut = []

    def cut_at_commit(conn):
        if not cut and has_request_context() and request.method == "POST":
            cut.append(True)
            pg_proxy.cut()

    event.listen(engine, "commit", cut_at_commit)
    try:
        response = admin.post("/organizations", organization("unknown"))
    finally:
        event.remove(engine, "commit", cut_at_commit)
        pg_proxy.restore()
    assert cut
    body = assert_unavailable(response, code="outcome_unknown")
    assert "may or may not have been stored" in body["errors"][0]["detail"]
    assert _stored_slugs(app, "unknown") == set()  # here the COMMIT never reached the server
    assert not tracebacks(caplog)
    assert_jsonapi(admin.post("/organizations", organization("unknown")), 201)


# ------------------------------------------------- every write path: the commit is the last statement
# Each case prepares what it needs, then names the request whose COMMIT must be its last use
# of the database (nothing read or written after it, so nothing can fail after it).

def _login(client, account):
    return assert_jsonapi(client.post("/auth/login", {"email": account.email, "password": PASSWORD}), 200)["meta"]


def _invitation(admin, factory, mails):
    org = factory.organization()
    created = assert_jsonapi(admin.post("/invitations", {"data": {"type": "invitations", "attributes": {
        "email": "invited@example.com", "organization_id": org.id, "roles": []}}}), 201)
    return created["data"]["id"], re.search(r"token:\s+(\S+)", mails[-1][2]).group(1)


def _case(name, admin, public, factory, mails):
    if name == "create":
        return admin, "post", "/organizations", organization("created"), 201
    if name == "update":
        org = factory.organization()
        return admin, "patch", f"/organizations/{org.id}", {"data": {"type": "organizations", "id": str(org.id),
                                                                     "attributes": {"name": "Renamed"}}}, 200
    if name == "increment":
        return admin, "post", f"/organizations/{factory.organization().id}/increment", {"usage": 2}, 200
    if name == "revoke_api_key":
        key = assert_jsonapi(admin.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "k"}}}), 201)
        return admin, "post", f"/api_keys/{key['data']['id']}/revoke", None, 200
    if name == "login":
        account = factory.account(email="login@example.com")
        return public, "post", "/auth/login", {"email": account.email, "password": PASSWORD}, 200
    if name == "api_login":
        key = assert_jsonapi(admin.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "k"}}}), 201)
        return public, "post", "/auth/api/login", {"key": key["meta"]["key"]}, 200
    if name == "refresh":
        tokens = _login(public, factory.account(email="refresh@example.com"))
        return public, "post", "/auth/refresh", {"refresh_token": tokens["refresh_token"]}, 200
    if name == "resend_invitation":
        invitation_id, _ = _invitation(admin, factory, mails)
        return admin, "post", f"/invitations/{invitation_id}/resend", None, 200
    if name == "accept_invitation":
        _, token = _invitation(admin, factory, mails)
        return public, "post", "/invitations/accept", {"token": token, "password": "a long new passphrase"}, 200
    if name == "admin_password_reset":
        return admin, "post", f"/accounts/{factory.account(email='reset@example.com').id}/password_reset", None, 204
    if name == "me":
        account = factory.account(email="me@example.com")
        me = ApiClient(public.client, factory.token(account))
        return me, "patch", "/accounts/me", {"data": {"type": "accounts", "attributes": {"preferences": {"a": 1}}}}, 200
    raise AssertionError(name)


CASES = ["create", "update", "increment", "revoke_api_key", "login", "api_login", "refresh", "resend_invitation",
         "accept_invitation", "admin_password_reset", "me"]


@pytest.mark.parametrize("name", CASES)
def test_the_commit_is_the_last_statement_of_every_write(make_app, factory, monkeypatch, name):
    writer = make_app()
    admin = ApiClient(writer.test_client(), factory.token(factory.account(roles=["admin"])))
    public = ApiClient(writer.test_client())
    mails = []
    monkeypatch.setattr(mail, "send", lambda to, subject, body: mails.append((to, subject, body)))
    client, method, path, body, status = _case(name, admin, public, factory, mails)
    with writer.app_context():
        engine = db.engine
    trail = []  # "COMMIT" and the start of each statement, in order, for the request under test only

    def on_commit(conn):
        trail.append("COMMIT")

    def on_statement(conn, cursor, statement, *args):
        trail.append(" ".join(statement.split()[:4]))

    event.listen(engine, "commit", on_commit)
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        mails_before = len(mails)
        response = getattr(client, method)(path, body) if body is not None else getattr(client, method)(path)
    finally:
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "before_cursor_execute", on_statement)
    assert response.status_code == status, response.get_data(as_text=True)[:1000]
    assert "COMMIT" in trail, trail
    last_commit = len(trail) - 1 - trail[::-1].index("COMMIT")
    assert trail[last_commit + 1:] == [], f"statements after the last COMMIT: {trail[last_commit + 1:]}"
    if name in ("resend_invitation", "admin_password_reset"):
        assert len(mails) == mails_before + 1  # the mail still goes, after the commit
