"""Helpers of the second-factor tests: log in, enrol an authenticator app, compute its codes
with pyotp from the secret the enrolment showed."""
import time

import pyotp

from tests.helpers import PASSWORD, ApiClient, assert_jsonapi


def login(app, email, password=PASSWORD, address="127.0.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return ApiClient(client).post("/auth/login", {"email": email, "password": password})


def code(secret, steps=0):
    """The TOTP code of the step `steps` away from now. Never in the last second of a step: a
    code of the step before, made then, would be two steps old when the server checks it (the
    server accepts one either side), and the test would fail once in a few hundred runs."""
    into = time.time() % 30
    if into > 29:
        time.sleep(30 - into + 0.05)
    return pyotp.TOTP(secret).at(time.time() + steps * 30)


def enrol_totp(client, name="Phone"):
    """(factor id, secret) of a TOTP factor created and verified by `client` (an ApiClient)."""
    created = assert_jsonapi(client.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "totp", "name": name}}}), 201)
    secret = created["meta"]["secret"]
    factor_id = created["data"]["id"]
    # A code of the previous step: the current one stays free for the sign-in that follows.
    verified = client.post(f"/mfa_factors/{factor_id}/verify", {"code": code(secret, -1)})
    assert_jsonapi(verified, 200)
    return factor_id, secret


def second_step(app, mfa_token, **body):
    return ApiClient(app.test_client()).post("/auth/mfa", {"mfa_token": mfa_token, **body})
