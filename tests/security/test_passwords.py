"""Password resets (through a real SMTP server on 127.0.0.1), changes and the password policy."""
import logging
import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from iam.extensions import db
from iam.models import Account, utcnow
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of

RESET_URL = "https://app.example/reset?token={token}"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def inbox(app, smtp_inbox):
    app.config["IAM_PASSWORD_RESET_URL"] = RESET_URL
    yield smtp_inbox
    app.config["IAM_PASSWORD_RESET_URL"] = ""


def token_from(message):
    body = message.get_payload(decode=True).decode()
    return re.search(r"https://app\.example/reset\?token=(\S+)", body).group(1)


def request_reset(app, email):
    return ApiClient(app.test_client()).post("/account/passwords/request_reset", {"email": email})


def reset(app, token, password=NEW_PASSWORD):
    return ApiClient(app.test_client()).post("/account/passwords/reset", {"token": token, "password": password})


def token_valid(app, token):
    return assert_jsonapi(ApiClient(app.test_client()).get("/account/passwords/token_valid",
                                                           {"token": token}), 200)["meta"]["valid"]


def login(app, email, password):
    return ApiClient(app.test_client()).post("/auth/login", {"email": email, "password": password})


@pytest.fixture
def ada(factory):
    return factory.account(email="ada@example.com")


def test_the_mailed_reset_link_sets_a_new_password_once(app, factory, inbox, ada):
    session = ApiClient(app.test_client(), factory.token(ada))
    assert request_reset(app, "ADA@example.com").status_code == 204
    message = inbox.wait()
    assert message["To"] == "ada@example.com"
    token = token_from(message)
    assert token_valid(app, token) is True

    assert reset(app, token).status_code == 204
    assert token_valid(app, token) is False
    assert error_of(reset(app, token, "another fine passphrase"), 400)["code"] == "invalid_token"
    assert error_of(session.get("/accounts/me"), 401)  # every session ended
    assert error_of(login(app, "ada@example.com", PASSWORD), 401)
    assert_jsonapi(login(app, "ada@example.com", NEW_PASSWORD), 200)


def test_unknown_or_disabled_accounts_get_the_same_204_and_no_mail(app, factory, inbox):
    factory.account(email="off@example.com", enabled=False)
    assert request_reset(app, "nobody@example.com").status_code == 204
    assert request_reset(app, "off@example.com").status_code == 204
    factory.account(email="ada@example.com")
    request_reset(app, "ada@example.com")
    assert inbox.wait()["To"] == "ada@example.com"  # the only message sent
    time.sleep(0.2)
    assert len(inbox.messages) == 1


def test_a_reset_request_takes_as_long_for_an_unknown_address(app, inbox, ada):
    """The lookup, the token and the mail run after the answer, so its timing tells nothing."""
    app.config["IAM_RESET_RATE_LIMIT"] = "1000 per minute"
    try:
        def fastest(email):
            times = []
            for _ in range(5):
                start = time.perf_counter()
                assert request_reset(app, email).status_code == 204
                times.append(time.perf_counter() - start)
            return min(times)

        known, unknown = fastest("ada@example.com"), fastest("nobody@example.com")
    finally:
        app.config["IAM_RESET_RATE_LIMIT"] = "10 per hour"
    inbox.wait(5)
    assert known < unknown * 1.5 + 0.002, (known, unknown)


def test_a_new_token_kills_the_older_one(app, inbox, ada):
    request_reset(app, "ada@example.com")
    first = token_from(inbox.wait(1))
    request_reset(app, "ada@example.com")
    second = token_from(inbox.wait(2))
    assert token_valid(app, first) is False and token_valid(app, second) is True
    assert error_of(reset(app, first), 400)["code"] == "invalid_token"
    assert reset(app, second).status_code == 204


def test_an_expired_token_is_refused(app, inbox, ada):
    request_reset(app, "ada@example.com")
    token = token_from(inbox.wait())
    with app.app_context():
        db.session.get(Account, ada.id).password_reset_token_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert token_valid(app, token) is False
    assert error_of(reset(app, token), 400)["code"] == "invalid_token"


def test_a_weak_password_does_not_use_up_the_token(app, inbox, ada):
    request_reset(app, "ada@example.com")
    token = token_from(inbox.wait())
    for weak in ("short", "password1", "Qwertyuiop", "x" * 257):
        assert error_of(reset(app, token, weak), 422)["code"] == "weak_password"
    assert token_valid(app, token) is True
    assert reset(app, token).status_code == 204


def test_parallel_resets_with_one_token_succeed_once(app, inbox, ada):
    request_reset(app, "ada@example.com")
    token = token_from(inbox.wait())
    statuses, barrier = [], threading.Barrier(6)

    def attempt(n):
        barrier.wait()
        statuses.append(reset(app, token, f"parallel passphrase {n}").status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [204] + [400] * 5


def test_reset_tokens_are_neither_stored_nor_logged(app, inbox, ada, caplog):
    caplog.set_level(logging.DEBUG)
    request_reset(app, "ada@example.com")
    token = token_from(inbox.wait())
    with app.app_context():
        dump = " ".join(str(value) for table in db.metadata.sorted_tables
                        for row in db.session.execute(text(f"SELECT * FROM {table.name}")) for value in row)
    assert reset(app, token).status_code == 204
    # Everything logged, but by the test's own SMTP server (aiosmtpd logs what it receives).
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name != "mail.log")
    assert "sent to ada@example.com" in logged  # the scan reads the mail thread's log too
    assert token not in dump and token not in logged
    assert NEW_PASSWORD not in logged


@pytest.mark.parametrize("params, parameter", [({}, "token"), ({"token": "x", "foo": "1"}, "foo")])
def test_token_valid_rejects_bad_queries(app, params, parameter):
    response = ApiClient(app.test_client()).get("/account/passwords/token_valid", params)
    assert error_of(response, 400)["source"]["parameter"] == parameter


def change(client, current, new):
    return client.post("/account/passwords/change", {"current_password": current, "new_password": new})


def test_change_needs_the_current_password_and_ends_other_sessions(app, factory, ada):
    here = ApiClient(app.test_client(), factory.token(ada))
    elsewhere = ApiClient(app.test_client(), factory.token(ada))
    error = error_of(change(here, "not my password", NEW_PASSWORD), 422)
    assert error["code"] == "invalid_credentials" and error["source"]["pointer"] == "/current_password"
    assert error_of(change(here, PASSWORD, "password"), 422)["code"] == "weak_password"
    assert change(here, PASSWORD, NEW_PASSWORD).status_code == 204
    assert_jsonapi(here.get("/accounts/me"), 200)
    assert error_of(elsewhere.get("/accounts/me"), 401)
    assert_jsonapi(login(app, "ada@example.com", NEW_PASSWORD), 200)


def test_change_needs_a_login(app):
    response = ApiClient(app.test_client()).post("/account/passwords/change",
                                                 {"current_password": "x", "new_password": NEW_PASSWORD})
    assert error_of(response, 401)["code"] == "unauthenticated"


@pytest.mark.parametrize("password", ["password", "12345678", "iloveyou", "Sunshine1", "short"])
def test_accounts_cannot_be_created_with_weak_passwords(admin, password):
    body = {"data": {"type": "accounts", "attributes": {"email": "new@example.com", "password": password}}}
    assert error_of(admin.post("/accounts", body), 422)["source"]["pointer"] == "/data/attributes/password"


def admin_reset(client, account):
    return client.post(f"/accounts/{account.id}/password_reset")


def test_an_admin_sends_the_owner_a_reset_link(app, admin, inbox, ada):
    assert admin_reset(admin, ada).status_code == 204
    token = token_from(inbox.wait())
    assert inbox.messages[0]["To"] == "ada@example.com"
    request_reset(app, "ada@example.com")
    newer = token_from(inbox.wait(2))
    assert token_valid(app, token) is False and token_valid(app, newer) is True  # a new token kills the older
    assert reset(app, newer).status_code == 204


def test_who_may_trigger_a_reset(app, admin, factory, inbox):
    org, other = factory.organization(), factory.organization()
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        organization_id=org.id, roles=[{"name": "org_admin", "scopes": {"organization": [org.id]}}])))
    member = factory.account(email="member@example.com", organization_id=org.id)
    outsider = factory.account(email="outsider@example.com", organization_id=other.id)
    boss = factory.account(email="boss@example.com", organization_id=org.id, roles=["admin"])
    assert admin_reset(org_admin, member).status_code == 204
    assert error_of(admin_reset(org_admin, outsider), 404)["code"] == "not_found"
    assert error_of(admin_reset(org_admin, boss), 403)["code"] == "forbidden"  # rights beyond its own
    off = factory.account(email="off@example.com", enabled=False)
    assert error_of(admin_reset(admin, off), 409)["code"] == "account_inactive"
    assert inbox.wait()["To"] == "member@example.com"
