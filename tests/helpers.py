"""Helpers for tests: a JSON:API client, row factories and document assertions."""
import json
import socket
import threading
import time
from email import message_from_bytes
from datetime import timedelta

from iam.auth import passwords
from iam.auth.tokens import issue_access_token
from iam.extensions import db
from iam.models import Account, AccountRole, AccountSession, Organization, OrganizationalUnit, Person, utcnow

API = "/api/v3/iam"
JSONAPI = "application/vnd.api+json"
PASSWORD = "correct horse battery staple"
# One Argon2 hash for every factory-made account: hashing costs ~20 ms by design.
PASSWORD_HASH = passwords.hash_password(PASSWORD)


class ApiClient:
    """Flask's test client speaking JSON:API to /api/v3/iam, optionally with a bearer token."""

    def __init__(self, client, token=None):
        self.client = client
        self.token = token

    def headers(self, extra=None, body=False):
        headers = {"Accept": JSONAPI}
        if body:
            headers["Content-Type"] = JSONAPI
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _url(self, path):
        if path.startswith((API, "/healthz", "/readyz")):
            return path
        return API + path

    def get(self, path, params=None, headers=None):
        return self.client.get(self._url(path), query_string=params, headers=self.headers(headers))

    def post(self, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.client.post(self._url(path), data=data, headers=self.headers(headers, body=data is not None))

    def patch(self, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body)
        return self.client.patch(self._url(path), data=data, headers=self.headers(headers, body=True))

    def delete(self, path, body=None, headers=None):
        data = json.dumps(body) if body is not None else None
        return self.client.delete(self._url(path), data=data, headers=self.headers(headers, body=data is not None))


class Factory:
    """Small factories that write rows straight through the models (committed)."""

    def __init__(self, app):
        self.app = app
        self.counter = 0

    def _save(self, obj):
        with self.app.app_context():
            db.session.add(obj)
            db.session.commit()
            db.session.refresh(obj)
            db.session.expunge(obj)
        return obj

    def _n(self):
        self.counter += 1
        return self.counter

    def organization(self, **kw):
        n = self._n()
        kw.setdefault("name", f"Org {n}")
        kw.setdefault("slug", f"org-{n}")
        return self._save(Organization(**kw))

    def unit(self, organization, name=None, parent=None, **kw):
        """Units go through the API's own tree logic, so paths and ancestry are real."""
        from iam.resources.organizational_units import OrganizationalUnits  # noqa: F401
        with self.app.app_context():
            parent_obj = db.session.get(OrganizationalUnit, parent.id) if parent else None
            unit = OrganizationalUnit(organization_id=organization.id, parent_id=parent.id if parent else None,
                                      name=name or f"unit-{self._n()}", policies={}, **kw)
            unit.path = (parent_obj.path if parent_obj else "") + "/" + unit.name
            unit.ancestry = parent_obj.ancestry if parent_obj else "/"
            db.session.add(unit)
            db.session.flush()
            unit.ancestry = f"{unit.ancestry}{unit.id}/"
            db.session.commit()
            db.session.refresh(unit)
            db.session.expunge(unit)
            return unit

    def person(self, organization, **kw):
        return self._save(Person(organization_id=organization.id, **kw))

    def account(self, email=None, roles=(), password=True, **kw):
        n = self._n()
        account = Account(email=email or f"user{n}@example.com", password_hash=PASSWORD_HASH if password else None,
                          **kw)
        for role in roles:
            if isinstance(role, str):
                role = {"name": role}
            account.roles.append(AccountRole(**{"scopes": {}, "info": {}, **role}))
        with self.app.app_context():
            db.session.add(account)
            db.session.commit()
            db.session.refresh(account)
            account_id = account.id
            db.session.expunge_all()
        account.id = account_id
        return account

    def role(self, account, name, **kw):
        kw.setdefault("scopes", {})
        kw.setdefault("info", {})
        return self._save(AccountRole(account_id=account.id, name=name, **kw))

    def session(self, account, **kw):
        """A live session of this account (as a login opens); returns its id."""
        now = utcnow()
        kw.setdefault("expires_at", now + timedelta(days=1))
        kw.setdefault("last_used_at", now)
        return self._save(AccountSession(account_id=account.id, **kw)).id

    def token(self, account, **session):
        """An access token for a fresh session of this account."""
        session_id = self.session(account, **session)
        with self.app.test_request_context():
            return issue_access_token(account.id, session_id)[0]


def assert_jsonapi(response, status=None):
    """The response is a JSON:API document with the right media type; returns its body."""
    if status is not None:
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:2000])
    if response.status_code == 204:
        return None
    assert response.mimetype == JSONAPI, response.mimetype
    body = response.get_json()
    assert isinstance(body, dict)
    if response.status_code >= 400:
        assert "errors" in body and "data" not in body
        for error in body["errors"]:
            assert error["status"] == str(response.status_code)
            assert isinstance(error["code"], str) and error["code"]
            assert isinstance(error["title"], str)
    else:
        assert "data" in body or "meta" in body
    return body


def error_of(response, status):
    """The first error object of an error response with this status."""
    body = assert_jsonapi(response, status)
    return body["errors"][0]


def ids(body):
    return sorted(int(item["id"]) for item in body["data"])


def run_dev_admin(app):
    """Run `flask iam dev-admin` as `make run` does (it is for IAM_ENV=development only)."""
    app.config["IAM_ENV"] = "development"
    try:
        result = app.test_cli_runner().invoke(args=["iam", "dev-admin"])
    finally:
        app.config["IAM_ENV"] = "test"
    assert result.exit_code == 0, result.output
    return result


def delete_all_rows(database):
    """Empty every table of a Flask-SQLAlchemy database, children first (call in an app context)."""
    database.session.remove()
    with database.engine.begin() as conn:
        for table in reversed(database.metadata.sorted_tables):
            conn.execute(table.delete())


class Inbox:
    def __init__(self):
        self.messages = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.arrived:
            self.messages.append(message_from_bytes(envelope.content))
            self.arrived.notify_all()
        return "250 OK"

    def wait(self, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
        assert len(self.messages) >= count, f"expected {count} message(s), got {len(self.messages)}"
        return self.messages[count - 1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rows(app, model, *where):
    """The rows of `model` matching `where`, in id order (the order written), detached."""
    from sqlalchemy import select
    with app.app_context():
        found = db.session.scalars(select(model).where(*where).order_by(model.id)).all()
        for row in found:
            db.session.expunge(row)
        return found


def audit_actions(app):
    """The audit trail's actions, in the order written."""
    from iam.models import AuditEvent
    return [event.action for event in rows(app, AuditEvent)]
