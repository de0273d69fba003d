"""Concurrency (API.md sections 1-4): unique values under racing creates, optimistic locking
with If-Match under racing read-modify-write, row-locked updates without If-Match, and
deletes racing updates. Real threads, each with its own client; the biggest test goes
through a real multi-threaded WSGI server (`live_server`). Never a 500, never a lost update.
"""
import threading
from datetime import timedelta

import requests
from sqlalchemy import func, select

from iam.extensions import db
from iam.models import Account, AccountSession, utcnow
from tests.helpers import API, JSONAPI, PASSWORD, ApiClient, assert_jsonapi

JOIN_TIMEOUT = 60


def run_parallel(count, work):
    """Run work(i) in `count` threads that start together; returns the results in order of i.

    An exception in a thread is re-raised here, so a failed assertion in a worker fails the test.
    """
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def target(i):
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker thread did not finish"
    if errors:
        raise errors[0]
    return results


def case_variant(text, i):
    """`text` with the case of its letters flipped by the bits of i (distinct for i < 2**letters)."""
    out, bit = [], 0
    for char in text:
        if char.isalpha():
            out.append(char.upper() if (i >> bit) & 1 else char.lower())
            bit += 1
        else:
            out.append(char)
    return "".join(out)


def account_patch(account_id, **attributes):
    return {"data": {"type": "accounts", "id": str(account_id), "attributes": attributes}}


def version_of(etag):
    """`"accounts-12-v3"` -> 3."""
    return int(etag.strip('"').rsplit("-v", 1)[1])


def assert_all_conflicts(answers, created_status=201):
    """Exactly one creation; every other answer a 409 not_unique/conflict; never a 500."""
    statuses = sorted(status for status, _ in answers)
    assert 500 not in statuses, [body for status, body in answers if status >= 500][:3]
    assert statuses.count(created_status) == 1, statuses
    assert statuses.count(409) == len(answers) - 1, statuses
    for status, body in answers:
        if status == 409:
            assert body["errors"][0]["status"] == "409", body
            assert body["errors"][0]["code"] in ("not_unique", "conflict"), body


# ------------------------------------------------------------------ unique values

def test_hundred_parallel_creates_with_one_email_make_one_account(live_server, admin):
    """Over a real threaded WSGI server: 100 POST /accounts with the same email in varying case."""
    url = f"{live_server}{API}/accounts"
    headers = {"Authorization": f"Bearer {admin.token}", "Accept": JSONAPI, "Content-Type": JSONAPI}
    emails = [case_variant("same@example.com", i) for i in range(100)]
    assert len(set(emails)) == 100 and "Same@Example.com" in emails and "same@example.com" in emails

    def create(i):
        doc = {"data": {"type": "accounts", "attributes": {"email": emails[i]}}}
        response = requests.post(url, json=doc, headers=headers, timeout=JOIN_TIMEOUT)
        assert response.headers["Content-Type"].startswith(JSONAPI), (response.status_code, response.text[:500])
        return response.status_code, response.json()

    answers = run_parallel(100, create)
    assert_all_conflicts(answers)

    listing = requests.get(url, params={"filter[email]": "same@example.com", "count": "true"},
                           headers=headers, timeout=JOIN_TIMEOUT)
    assert listing.status_code == 200, listing.text[:500]
    body = listing.json()
    assert body["meta"]["count"] == 1 and len(body["data"]) == 1, body
    created = next(body for status, body in answers if status == 201)
    assert body["data"][0]["id"] == created["data"]["id"]


def test_hundred_parallel_creates_with_one_slug_make_one_organization(app, admin):
    """100 POST /organizations with the same slug (slugs are case-sensitive: same spelling)."""
    def create(i):
        api = ApiClient(app.test_client(), admin.token)
        response = api.post("/organizations", {"data": {"type": "organizations",
                                                        "attributes": {"name": f"Racer {i}", "slug": "same-slug"}}})
        return response.status_code, assert_jsonapi(response)

    answers = run_parallel(100, create)
    assert_all_conflicts(answers)

    body = assert_jsonapi(admin.get("/organizations", {"filter[slug]": "same-slug", "count": "true"}), 200)
    assert body["meta"]["count"] == 1 and len(body["data"]) == 1, body
    created = next(body for status, body in answers if status == 201)
    assert body["data"][0]["id"] == created["data"]["id"]


# ------------------------------------------------------------------ optimistic locking

def test_read_modify_write_with_if_match_loses_no_update(app, admin, factory):
    account = factory.account(email="counter@example.com", preferences={"count": 0})
    threads, max_attempts = 20, 200
    unexpected, stale = [], []

    def increment(i):
        api = ApiClient(app.test_client(), admin.token)
        for _ in range(max_attempts):
            current = api.get(f"/accounts/{account.id}")
            body = assert_jsonapi(current, 200)
            etag, count = current.headers["ETag"], body["data"]["attributes"]["preferences"]["count"]
            response = api.patch(f"/accounts/{account.id}", account_patch(account.id, preferences={"count": count + 1}),
                                 headers={"If-Match": etag})
            if response.status_code == 200:
                return count + 1
            answer = assert_jsonapi(response)
            if response.status_code != 412 or answer["errors"][0]["code"] != "precondition_failed":
                unexpected.append((response.status_code, answer))
                return None
            stale.append(i)
        raise AssertionError(f"thread {i} did not get its update in after {max_attempts} attempts")

    written = run_parallel(threads, increment)
    assert not unexpected, unexpected[:3]
    # Each successful write saw a distinct value: no two writers built on the same read.
    assert sorted(written) == list(range(1, threads + 1)), written
    final = assert_jsonapi(admin.get(f"/accounts/{account.id}"), 200)
    assert final["data"]["attributes"]["preferences"] == {"count": threads}


def test_parallel_patches_without_if_match_are_serialized(app, admin, factory):
    account = factory.account(email="target@example.com", preferences={})
    before = admin.get(f"/accounts/{account.id}")
    assert_jsonapi(before, 200)
    start_version = version_of(before.headers["ETag"])
    threads = 20

    def patch(i):
        api = ApiClient(app.test_client(), admin.token)
        response = api.patch(f"/accounts/{account.id}", account_patch(account.id, preferences={"by": i}))
        return response.status_code, assert_jsonapi(response)

    answers = run_parallel(threads, patch)
    assert [status for status, _ in answers] == [200] * threads, \
        [(status, body.get("errors")) for status, body in answers if status != 200][:5]

    after = admin.get(f"/accounts/{account.id}")
    final = assert_jsonapi(after, 200)["data"]["attributes"]["preferences"]
    assert final in [{"by": i} for i in range(threads)]
    assert version_of(after.headers["ETag"]) == start_version + threads


def test_delete_racing_patches_never_fails_with_500(app, admin, factory):
    patchers, deleters = 15, 3
    for round_ in range(10):
        account = factory.account(email=f"doomed{round_}@example.com", preferences={})

        def work(i, account_id=account.id):
            api = ApiClient(app.test_client(), admin.token)
            if i < deleters:
                response = api.delete(f"/accounts/{account_id}")
            else:
                response = api.patch(f"/accounts/{account_id}", account_patch(account_id, preferences={"by": i}))
            return response.status_code, assert_jsonapi(response)

        answers = run_parallel(patchers + deleters, work)
        statuses = [status for status, _ in answers]
        assert set(statuses) <= {200, 204, 404, 412}, [(s, b) for s, b in answers if s not in (200, 204, 404, 412)][:3]
        assert set(statuses[:deleters]) <= {204, 404, 412}, statuses
        assert set(statuses[deleters:]) <= {200, 404, 412}, statuses
        for status, body in answers:
            if status == 404:
                assert body["errors"][0]["code"] == "not_found", body
            if status == 412:
                assert body["errors"][0]["code"] == "precondition_failed", body
        # At most one delete wins, and the outcome is consistent with the answers given.
        assert statuses.count(204) <= 1, statuses
        assert_jsonapi(admin.get(f"/accounts/{account.id}"), 404 if 204 in statuses else 200)


# ------------------------------------------------- bookkeeping writes never conflict
# Requests record activity as a side effect (last login, a session's last use, an API key's
# last use). Found by the load benchmark: those writes went through the version check, so
# parallel logins to one account, or parallel requests of one session when its last use
# was due for an update, failed each other with 412.

def test_parallel_logins_to_one_account_all_succeed(app, factory):
    account = factory.account(email="busy@example.com")

    def login(i):
        response = app.test_client().post(f"{API}/auth/login", json={"email": "busy@example.com",
                                                                      "password": PASSWORD})
        return response.status_code

    # Every attempt in flight counts against the account's lock limit until one succeeds
    # (that is what stops parallel password guessing), so run as many as the limit allows.
    parallel = app.config["IAM_LOGIN_MAX_FAILURES"]
    assert run_parallel(parallel, login) == [200] * parallel
    with app.app_context():
        stored = db.session.get(Account, account.id)
        assert stored.failed_login_count == 0 and stored.last_login_at is not None
        assert db.session.scalar(select(func.count()).select_from(AccountSession)
                                 .where(AccountSession.account_id == account.id)) == parallel


def test_parallel_requests_of_one_session_all_succeed_when_its_last_use_is_recorded(app, factory):
    account = factory.account()
    token = factory.token(account, last_used_at=utcnow() - timedelta(minutes=2))

    def me(i):
        return ApiClient(app.test_client(), token).get("/accounts/me").status_code

    assert run_parallel(16, me) == [200] * 16
    # and the session still ends cleanly afterwards (its version moved on under the ORM)
    assert ApiClient(app.test_client(), token).post("/auth/logout").status_code == 204
    assert ApiClient(app.test_client(), token).get("/accounts/me").status_code == 401


def test_parallel_api_key_logins_all_succeed(app, admin):
    created = assert_jsonapi(admin.post("/api_keys", {"data": {"type": "api_keys",
                                                               "attributes": {"name": "nightly"}}}), 201)
    key = created["meta"]["key"]

    def login(i):
        return app.test_client().post(f"{API}/auth/api/login", json={"key": key}).status_code

    assert run_parallel(8, login) == [200] * 8
