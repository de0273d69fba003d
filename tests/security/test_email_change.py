"""Self-service email change is confirmed from the new mailbox and tells the old one (issue 10, finding 3).

Before: `PATCH /accounts/me` with another address (an invitee's, say) took effect at once,
and a 409 told any signed-in user whether an address had an account anywhere.
"""
import re
import time

import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import Account, AuditEvent
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of

CONFIRM_URL = "https://app.example/email?token={token}"


@pytest.fixture
def inbox(app, smtp_inbox):
    app.config["IAM_EMAIL_CHANGE_URL"] = CONFIRM_URL
    yield smtp_inbox
    app.config["IAM_EMAIL_CHANGE_URL"] = ""


def change(client, email, password=PASSWORD):
    return client.patch("/accounts/me", {"data": {"type": "accounts", "attributes": {
        "email": email, "current_password": password}}})


def mails_to(inbox, address, count=1):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [m for m in inbox.messages if m["To"].lower() == address.lower()]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no mail to {address}: {[m['To'] for m in inbox.messages]}")


def body(message):
    return message.get_payload(decode=True).decode()


def token_in(message):
    match = re.search(r"https://app\.example/email\?token=(\S+)", body(message))
    return match.group(1) if match else None


def confirm(app, token):
    return ApiClient(app.test_client()).post("/account/email/confirm", {"token": token})


def test_a_new_address_takes_effect_only_once_it_confirms(app, user, client, inbox):
    answer = assert_jsonapi(change(user, "new@example.com"), 200)
    assert answer["data"]["attributes"]["email"] == "plain@example.com"
    assert answer["meta"]["email_change"]["status"] == "pending"
    assert answer["meta"]["email_change"]["email"] == "new@example.com"
    # Nothing changed yet: the old address still signs in, the new one does not.
    assert assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]["email"] == "plain@example.com"
    assert_jsonapi(client.post("/auth/login", {"email": "plain@example.com", "password": PASSWORD}), 200)
    assert error_of(client.post("/auth/login", {"email": "new@example.com", "password": PASSWORD}), 401)

    token = token_in(mails_to(inbox, "new@example.com")[0])
    notice = body(mails_to(inbox, "plain@example.com")[0])
    assert "new@example.com" in notice and token not in notice  # the old address is told, without the link
    assert confirm(app, token).status_code == 204

    assert assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]["email"] == "new@example.com"
    assert_jsonapi(client.post("/auth/login", {"email": "new@example.com", "password": PASSWORD}), 200)
    assert error_of(client.post("/auth/login", {"email": "plain@example.com", "password": PASSWORD}), 401)
    changed = mails_to(inbox, "plain@example.com", count=2)[1]
    assert "new@example.com" in body(changed)
    # The token works once.
    assert error_of(confirm(app, token), 400)["code"] == "invalid_token"
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert "email_change_requested" in actions and "email_changed" in actions
        stored = db.session.get(Account, user.account.id)
        assert stored.pending_email is None and stored.email_change_token_digest is None


def test_a_taken_address_gets_the_same_answer_and_no_link(app, factory, user, inbox):
    """No oracle: the answer does not tell whether the address has an account."""
    factory.account(email="invitee@example.com")
    free = assert_jsonapi(change(user, "free@example.com"), 200)
    taken = assert_jsonapi(change(user, "INVITEE@example.com"), 200)
    for answer, email in ((free, "free@example.com"), (taken, "invitee@example.com")):
        assert answer["data"]["attributes"]["email"] == "plain@example.com"
        assert answer["meta"]["email_change"]["status"] == "pending"
        assert answer["meta"]["email_change"]["email"].lower() == email
    assert set(free["meta"]) == set(taken["meta"])
    # The owner of the taken address is told someone tried; it gets nothing to confirm.
    to_invitee = body(mails_to(inbox, "invitee@example.com")[0])
    assert "already has an account" in to_invitee and "token" not in to_invitee
    # The free address's link died with the newer request.
    assert error_of(confirm(app, token_in(mails_to(inbox, "free@example.com")[0])), 400)["code"] == "invalid_token"
    with app.app_context():
        assert db.session.get(Account, user.account.id).email == "plain@example.com"


def test_an_address_taken_before_confirmation_is_a_409_and_nothing_changes(app, factory, user, inbox):
    assert_jsonapi(change(user, "race@example.com"), 200)
    token = token_in(mails_to(inbox, "race@example.com")[0])
    factory.account(email="race@example.com")
    error = error_of(confirm(app, token), 409)
    assert error["code"] == "not_unique"
    with app.app_context():
        assert db.session.get(Account, user.account.id).email == "plain@example.com"


def test_a_change_needs_the_password_and_a_valid_address(user, inbox):
    error = error_of(change(user, "new@example.com", password="wrong password!"), 422)
    assert error["source"]["pointer"] == "/data/attributes/current_password"
    error = error_of(change(user, "not an address"), 422)
    assert error["source"]["pointer"] == "/data/attributes/email"
    assert inbox.messages == []


@pytest.mark.parametrize("token, status, code", [("", 422, "invalid_value"), ("x" * 300, 422, "invalid_value"),
                                                  ("unknown-token", 400, "invalid_token")])
def test_bad_tokens_are_client_errors(app, token, status, code):
    error = error_of(confirm(app, token), status)
    assert error["code"] == code and error["source"]["pointer"] == "/token"
    response = ApiClient(app.test_client()).post("/account/email/confirm", raw="{")
    assert error_of(response, 400)["code"] == "invalid_json"


def test_an_expired_token_is_refused(app, user, inbox):
    app.config["IAM_EMAIL_CHANGE_TTL"] = 1
    try:
        assert_jsonapi(change(user, "late@example.com"), 200)
    finally:
        app.config["IAM_EMAIL_CHANGE_TTL"] = 24 * 3600
    token = token_in(mails_to(inbox, "late@example.com")[0])
    time.sleep(1.1)
    assert error_of(confirm(app, token), 400)["code"] == "invalid_token"


def test_a_reset_link_mailed_to_the_old_address_dies_with_it(app, user, inbox):
    """Whoever keeps the old mailbox must not get the account back through an older reset link."""
    app.config["IAM_PASSWORD_RESET_URL"] = "https://app.example/reset?token={token}"
    try:
        assert ApiClient(app.test_client()).post("/account/passwords/request_reset",
                                                 {"email": "plain@example.com"}).status_code == 204
        reset = re.search(r"token=(\S+)", body(mails_to(inbox, "plain@example.com")[0])).group(1)
    finally:
        app.config["IAM_PASSWORD_RESET_URL"] = ""
    assert_jsonapi(change(user, "moved@example.com"), 200)
    assert confirm(app, token_in(mails_to(inbox, "moved@example.com")[0])).status_code == 204
    error = error_of(ApiClient(app.test_client()).post("/account/passwords/reset",
                                                       {"token": reset, "password": "a brand new passphrase"}), 400)
    assert error["code"] == "invalid_token"
