"""Invitations with identity_provider_id: accepted by signing in through that provider with the
invited email (the token goes to GET /auth/sso/start?invitation_token=..), never with a password.
Mail goes over real SMTP (the smtp_inbox fixture)."""
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import Account, AccountIdentity, AccountRole, AuditEvent, Invitation, Person
from tests.helpers import ApiClient, assert_jsonapi, error_of
from tests.sso.flows import START, authorize, set_user

INVITE_URL = "https://app.example/invite?token={token}"


@pytest.fixture
def inbox(app, smtp_inbox):
    app.config["IAM_INVITATION_URL"] = INVITE_URL
    yield smtp_inbox
    app.config["IAM_INVITATION_URL"] = ""


def token_in(message):
    body = message.get_payload(decode=True).decode()
    return re.search(r"https://app\.example/invite\?token=(\S+)", body).group(1)


def invite(admin, org, provider_id, email="ivy@acme.example", roles=()):
    return admin.post("/invitations", {"data": {"type": "invitations", "attributes": {
        "email": email, "organization_id": org.id, "roles": list(roles), "identity_provider_id": provider_id}}})


def invitation_row(app, invitation_id):
    with app.app_context():
        row = db.session.get(Invitation, int(invitation_id))
        db.session.expunge(row)
        return row


def test_an_invitation_is_accepted_by_signing_in_through_its_provider(app, admin, org, make_provider, oidc_provider,
                                                                        inbox):
    provider_id = make_provider()  # JIT off: the invitation is what lets the account be made
    created = assert_jsonapi(invite(admin, org, provider_id, roles=[{"name": "editor", "scopes": {}}]), 201)
    assert created["data"]["attributes"]["identity_provider_id"] == provider_id
    token = token_in(inbox.wait())
    # A password cannot accept it.
    refused = ApiClient(app.test_client()).post("/invitations/accept", {"token": token, "password": "a fine passphrase"})
    assert error_of(refused, 409)["code"] == "sso_required"
    assert invitation_row(app, created["data"]["id"]).status == "pending"
    set_user(oidc_provider[0], "ivy-1", email="ivy@acme.example", given_name="Ivy", family_name="Invited")
    browser = app.test_client()
    started = browser.get(START, query_string={"invitation_token": token})
    assert started.status_code == 302
    assert parse_qs(urlsplit(started.headers["Location"]).query)["login_hint"] == ["ivy@acme.example"]
    body = assert_jsonapi(browser.get(authorize(started.headers["Location"], "ivy-1")), 200)
    assert body["data"]["attributes"]["amr"] == ["sso"]
    with app.app_context():
        account = db.session.scalars(select(Account).where(Account.email != "admin@example.com")).one()
        assert (account.email, account.auth_type, account.password_hash) == ("ivy@acme.example", "sso", None)
        person = db.session.get(Person, account.person_id)
        assert (person.first_name, person.last_name) == ("Ivy", "Invited")
        assert [r.name for r in db.session.scalars(select(AccountRole).where(AccountRole.account_id == account.id))] \
            == ["editor"]
        identity = db.session.scalars(select(AccountIdentity)).one()
        assert (identity.account_id, identity.subject) == (account.id, "ivy-1")
        invitation = db.session.get(Invitation, int(created["data"]["id"]))
        assert invitation.status == "accepted" and invitation.account_id == account.id
        actions = [e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.action != "create")
                                                                       .order_by(AuditEvent.id))]
    assert actions == ["invitation_accepted", "sso_login"]
    # The token is used up.
    assert error_of(app.test_client().get(START, query_string={"invitation_token": token}), 400)["code"] == \
        "invalid_token"


def test_signing_in_with_another_email_does_not_accept_it(app, admin, org, make_provider, oidc_provider, inbox):
    provider_id = make_provider(jit_provisioning=True)
    created = assert_jsonapi(invite(admin, org, provider_id), 201)
    token = token_in(inbox.wait())
    set_user(oidc_provider[0], "someone-else", email="someone@acme.example")
    browser = app.test_client()
    started = browser.get(START, query_string={"invitation_token": token})
    answer = browser.get(authorize(started.headers["Location"], "someone-else"))
    assert error_of(answer, 401)["code"] == "sso_failed"
    assert invitation_row(app, created["data"]["id"]).status == "pending"
    with app.app_context():
        assert [a.email for a in db.session.scalars(select(Account))] == ["admin@example.com"]
        reasons = [e.changes["reason"] for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "sso_failed").order_by(AuditEvent.id))]
    assert "the invitation is for ivy@acme.example" in reasons[0]


def test_the_provider_must_be_of_the_organization_and_hold_the_email_domain(app, admin, org, factory, make_provider,
                                                                              inbox):
    provider_id = make_provider()
    other_org = factory.organization(slug="other")
    foreign = make_provider(organization_id=other_org.id, email_domains=["other.example"])
    for wrong in (foreign, 987654):
        error = error_of(invite(admin, org, wrong), 422)
        assert error["code"] == "not_found" and error["source"]["pointer"] == "/data/attributes/identity_provider_id"
    error = error_of(invite(admin, org, provider_id, email="ivy@elsewhere.example"), 422)
    assert error["source"]["pointer"] == "/data/attributes/identity_provider_id"
    with app.app_context():
        assert db.session.scalars(select(Invitation)).all() == []


def test_a_pending_invitation_can_be_moved_to_a_provider(app, admin, org, make_provider, inbox):
    provider_id = make_provider()
    created = assert_jsonapi(admin.post("/invitations", {"data": {"type": "invitations", "attributes": {
        "email": "ivy@acme.example", "organization_id": org.id, "roles": []}}}), 201)
    assert created["data"]["attributes"]["identity_provider_id"] is None
    changed = admin.patch(f"/invitations/{created['data']['id']}", {"data": {
        "type": "invitations", "id": created["data"]["id"], "attributes": {"identity_provider_id": provider_id}}})
    assert assert_jsonapi(changed, 200)["data"]["attributes"]["identity_provider_id"] == provider_id


def test_bad_invitation_tokens_at_the_start(app, admin, org, make_provider, inbox):
    provider_id = make_provider()
    other = make_provider(email_domains=["other.acme.example"])
    for token in ("not-a-token", "x" * 300, ""):
        error = error_of(app.test_client().get(START, query_string={"invitation_token": token}), 400)
        assert error["code"] == "invalid_token" and error["source"]["parameter"] == "invitation_token"
    # An invitation accepted with a password has no provider to start.
    admin.post("/invitations", {"data": {"type": "invitations", "attributes": {
        "email": "pat@acme.example", "organization_id": org.id, "roles": []}}})
    error = error_of(app.test_client().get(START, query_string={"invitation_token": token_in(inbox.wait(1))}), 400)
    assert error["code"] == "invalid_token"
    assert_jsonapi(invite(admin, org, provider_id), 201)
    token = token_in(inbox.wait(2))
    error = error_of(app.test_client().get(START, query_string={"invitation_token": token,
                                                                "identity_provider_id": other}), 400)
    assert error["source"]["parameter"] == "identity_provider_id"


def test_deleting_the_provider_revokes_its_pending_invitations(app, admin, org, make_provider, inbox):
    provider_id = make_provider()
    created = assert_jsonapi(invite(admin, org, provider_id), 201)
    assert admin.delete(f"/identity_providers/{provider_id}").status_code == 204
    row = invitation_row(app, created["data"]["id"])
    assert row.status == "revoked" and row.identity_provider_id is None and row.token_digest is None
