"""Authenticator apps (TOTP) and recovery codes: enrolment, the two-step sign-in and its
refusals (replay, wrong codes, the lock, a dead mfa_token), recovery codes used once; codes
computed by pyotp from the secret the enrolment showed."""
from sqlalchemy import select, text

from iam import secret_store
from iam.extensions import db
from iam.models import AccountSession, AuditEvent, MfaFactor, MfaRecoveryCode
from tests.helpers import ApiClient, assert_jsonapi, error_of
from tests.mfa.helpers import code, enrol_totp, login, second_step


def test_enrolment_shows_the_secret_once_and_stores_it_sealed(app, ada):
    created = assert_jsonapi(ada.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "totp", "name": "Phone"}}}), 201)
    attributes, meta = created["data"]["attributes"], created["meta"]
    assert attributes["kind"] == "totp" and attributes["status"] == "pending" and attributes["name"] == "Phone"
    secret = meta["secret"]
    assert len(secret) == 32 and meta["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={secret}" in meta["otpauth_uri"] and "ada%40example.com" in meta["otpauth_uri"]
    factor_id = created["data"]["id"]
    shown = ada.get(f"/mfa_factors/{factor_id}").get_data(as_text=True)
    assert secret not in shown and "secret" not in assert_jsonapi(ada.get(f"/mfa_factors/{factor_id}"), 200)[
        "data"]["attributes"]
    with app.app_context():
        sealed = db.session.execute(text("SELECT secret_sealed FROM mfa_factors")).scalar()
        assert secret not in sealed
        assert secret_store.unseal(sealed, "mfa_factors.secret") == secret
    # A wrong code does not activate it; the right one does.
    assert error_of(ada.post(f"/mfa_factors/{factor_id}/verify", {"code": "000000"}), 401)["code"] == "invalid_code"
    assert assert_jsonapi(ada.get(f"/mfa_factors/{factor_id}"), 200)["data"]["attributes"]["status"] == "pending"
    verified = assert_jsonapi(ada.post(f"/mfa_factors/{factor_id}/verify", {"code": code(secret)}), 200)
    assert verified["data"]["attributes"]["status"] == "active"
    assert error_of(ada.post(f"/mfa_factors/{factor_id}/verify", {"code": code(secret)}), 409)["code"] == \
        "not_pending"
    me = assert_jsonapi(ada.get("/accounts/me"), 200)
    assert me["data"]["attributes"]["mfa_enabled"] is True


def test_a_pending_factor_does_not_make_the_sign_in_two_step(app, ada):
    ada.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {"kind": "totp"}}})
    assert "token" in assert_jsonapi(login(app, "ada@example.com"), 200)["meta"]


def test_the_two_step_sign_in(app, ada):
    factor_id, secret = enrol_totp(ada)
    first = assert_jsonapi(login(app, "ada@example.com"), 200)
    meta = first["meta"]
    assert meta["mfa_required"] is True and "token" not in meta and "refresh_token" not in meta and "data" not in first
    assert meta["factors"] == [{"id": factor_id, "kind": "totp", "name": "Phone"}]
    done = assert_jsonapi(second_step(app, meta["mfa_token"], code=code(secret)), 200)
    assert done["data"]["attributes"]["amr"] == ["pwd", "otp"]
    assert done["meta"]["token"] and done["meta"]["refresh_token"]
    assert ApiClient(app.test_client(), done["meta"]["token"]).get("/accounts/me").status_code == 200
    with app.app_context():
        session = db.session.get(AccountSession, int(done["data"]["id"]))
        assert session.mfa_at is not None
        actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "mfa_used" in actions and actions[-1] == "login"
    # The mfa_token works once.
    assert error_of(second_step(app, meta["mfa_token"], code=code(secret, 1)), 401)["code"] == "invalid_token"


def test_a_code_works_once_and_one_step_of_drift_is_allowed(app, ada):
    _, secret = enrol_totp(ada)
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    ahead = code(secret, 1)  # the authenticator's clock is a step ahead
    assert second_step(app, token, code=ahead).status_code == 200
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    replay = second_step(app, token, code=ahead)
    assert error_of(replay, 401)["code"] == "invalid_code"  # the same code again (or an older one)
    assert error_of(second_step(app, token, code=code(secret, 0)), 401)["code"] == "invalid_code"
    assert error_of(second_step(app, token, code=code(secret, -3)), 401)["code"] == "invalid_code"
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    assert error_of(second_step(app, token, code=code(secret, 3)), 401)["code"] == "invalid_code"  # too far
    with app.app_context():
        reasons = [e.changes["reason"] for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "mfa_failed").order_by(AuditEvent.id))]
    assert reasons[0] == "the code was used already"


def test_an_mfa_token_dies_after_five_wrong_codes(app, ada):
    _, secret = enrol_totp(ada)
    app.config["IAM_LOGIN_MAX_FAILURES"] = 50  # the account's lock is another test's
    try:
        token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
        for _ in range(5):
            assert error_of(second_step(app, token, code="123456"), 401)["code"] == "invalid_code"
        assert error_of(second_step(app, token, code=code(secret)), 401)["code"] == "invalid_token"
    finally:
        app.config["IAM_LOGIN_MAX_FAILURES"] = 5


def test_wrong_codes_lock_the_account_like_wrong_passwords(app, ada):
    _, secret = enrol_totp(ada)
    # The password's attempt stays counted until the second factor is proven: five logins
    # with the right password and a wrong code each lock the account.
    for _ in range(3):
        token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
        second_step(app, token, code="999999")
    locked = login(app, "ada@example.com")
    assert error_of(locked, 401)["code"] == "invalid_credentials"
    with app.app_context():
        assert "lock" in [e.action for e in db.session.scalars(select(AuditEvent))]


def test_the_password_alone_does_not_reset_the_count_but_a_second_factor_does(app, ada):
    from iam.models import Account
    _, secret = enrol_totp(ada)

    def count():
        with app.app_context():
            return db.session.get(Account, ada.account.id).failed_login_count

    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    assert count() == 1  # a correct password, the second factor still to come
    second_step(app, token, code="999999")
    assert count() == 2
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    assert count() == 3
    assert second_step(app, token, code=code(secret)).status_code == 200
    assert count() == 0


def test_recovery_codes_are_shown_once_and_work_once(app, ada):
    _, secret = enrol_totp(ada)
    created = assert_jsonapi(ada.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "recovery_codes"}}}), 201)
    recovery = created["meta"]["codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10 and created["data"]["attributes"]["status"] == "active"
    with app.app_context():
        digests = db.session.scalars(select(MfaRecoveryCode.code_digest)).all()
    assert len(digests) == 10 and not any(c.replace("-", "") in d for c in recovery for d in digests)
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    done = assert_jsonapi(second_step(app, token, code=recovery[0].upper()), 200)  # any case, dashes or not
    assert done["data"]["attributes"]["amr"] == ["pwd", "otp"]
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    assert error_of(second_step(app, token, code=recovery[0]), 401)["code"] == "invalid_code"
    assert second_step(app, token, code=recovery[1].replace("-", "")).status_code == 200
    # A new set replaces the old one.
    again = assert_jsonapi(ada.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "recovery_codes"}}}), 201)
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    assert error_of(second_step(app, token, code=recovery[2]), 401)["code"] == "invalid_code"
    assert second_step(app, token, code=again["meta"]["codes"][0]).status_code == 200
    with app.app_context():
        assert len(db.session.scalars(select(MfaFactor).where(MfaFactor.kind == "recovery_codes")).all()) == 1


def test_malformed_second_steps(app, ada):
    enrol_totp(ada)
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    assert error_of(second_step(app, token), 422)["source"]["pointer"] == "/code"
    assert error_of(ApiClient(app.test_client()).post("/auth/mfa", {"code": "123456"}), 422)["source"][
        "pointer"] == "/mfa_token"
    assert error_of(second_step(app, "nope", code="123456"), 401)["code"] == "invalid_token"
    assert error_of(ApiClient(app.test_client()).post("/auth/mfa", raw="[]"), 400)["code"] == "invalid_document"


def test_api_key_logins_stay_single_step(app, ada):
    enrol_totp(ada)
    # A key made before the factor (a key's creation needs a step-up once a factor exists).
    with app.app_context():
        from iam.auth.tokens import new_api_key
        from iam.models import ApiKey
        from iam.resources.common import digest
        raw = new_api_key()
        db.session.add(ApiKey(account_id=ada.account.id, name="cron", prefix=raw[:8], key_digest=digest(raw),
                              scopes={}))
        db.session.commit()
    answer = assert_jsonapi(ApiClient(app.test_client()).post("/auth/api/login", {"key": raw}), 200)
    assert answer["meta"]["token"] and answer["data"]["attributes"]["amr"] == ["api_key"]


def test_no_secret_or_code_in_any_answer_log_or_audit_record(app, ada, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    factor_id, secret = enrol_totp(ada)
    recovery = ada.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "recovery_codes"}}}).get_json()["meta"]["codes"]
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    used = code(secret)
    second_step(app, token, code=used)
    listed = ada.get("/mfa_factors").get_data(as_text=True) + ada.get(
        f"/mfa_factors/{factor_id}", {"fields[mfa_factors]": "kind,name"}).get_data(as_text=True)
    assert error_of(ada.get("/mfa_factors", {"fields[mfa_factors]": "secret"}), 400)
    with app.app_context():
        events = repr([(e.action, e.changes) for e in db.session.scalars(select(AuditEvent))])
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("iam", app.logger.name))
    for value in [secret, used, token, *recovery, *(c.replace("-", "") for c in recovery)]:
        assert value not in listed and value not in events and value not in logged


def test_a_two_step_sign_in_sweeps_expired_mfa_tokens(app, ada):
    from datetime import timedelta

    from sqlalchemy import update

    from iam.models import MfaChallenge, utcnow
    _, secret = enrol_totp(ada)
    login(app, "ada@example.com")
    with app.app_context():
        db.session.execute(update(MfaChallenge).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    with app.app_context():
        assert len(db.session.scalars(select(MfaChallenge)).all()) == 1
    assert second_step(app, token, code=code(secret)).status_code == 200
