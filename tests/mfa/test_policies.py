"""Step-up before dangerous changes, mfa_required policies forcing enrolment, and the
administration of other accounts' factors (a lost phone), with tenancy."""
from datetime import timedelta

from sqlalchemy import select, update

from iam.extensions import db
from iam.models import AccountSession, AuditEvent, MfaFactor, utcnow
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of
from tests.mfa.helpers import code, enrol_totp, login, second_step

NEW_PASSWORD = "another correct horse battery"


def signed_in(app, email, secret, steps=0):
    """An ApiClient signed in with password and TOTP."""
    token = login(app, email).get_json()["meta"]["mfa_token"]
    done = assert_jsonapi(second_step(app, token, code=code(secret, steps)), 200)
    return ApiClient(app.test_client(), done["meta"]["token"]), done


def age_second_factor(app, session_id, minutes=11):
    with app.app_context():
        db.session.execute(update(AccountSession).where(AccountSession.id == int(session_id))
                           .values(mfa_at=utcnow() - timedelta(minutes=minutes)))
        db.session.commit()


def dangerous(client, factor_id):
    """The changes that need a recent second factor: their answers."""
    return {
        "email": client.patch("/accounts/me", {"data": {"type": "accounts", "attributes": {
            "email": "ada.new@example.com", "current_password": PASSWORD}}}),
        "password": client.post("/account/passwords/change", {"current_password": PASSWORD,
                                                              "new_password": NEW_PASSWORD}),
        "api_key": client.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "cron"}}}),
        "factor": client.delete(f"/mfa_factors/{factor_id}"),
    }


def test_dangerous_changes_need_a_second_factor_within_ten_minutes(app, ada):
    factor_id, secret = enrol_totp(ada)
    # ada's own session proved the factor when it verified it; a password-only session has not.
    with app.app_context():
        db.session.execute(update(AccountSession).values(mfa_at=None))
        db.session.commit()
    for name, answer in dangerous(ada, factor_id).items():
        assert error_of(answer, 403)["code"] == "step_up_required", name
    fresh, done = signed_in(app, "ada@example.com", secret)
    age_second_factor(app, done["data"]["id"])
    assert error_of(fresh.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "x"}}}), 403)[
        "code"] == "step_up_required"
    # POST /auth/step_up renews it.
    stepped = assert_jsonapi(fresh.post("/auth/step_up", {"code": code(secret, 1)}), 200)
    assert stepped["data"]["attributes"]["amr"] == ["pwd", "otp"]
    answers = dangerous(fresh, factor_id)
    assert answers["password"].status_code == 204 and answers["email"].status_code == 200
    assert answers["api_key"].status_code == 201 and answers["factor"].status_code == 204
    with app.app_context():
        assert "step_up" in [e.action for e in db.session.scalars(select(AuditEvent))]


def test_step_up_refusals(app, ada, factory):
    plain = ApiClient(app.test_client(), factory.token(factory.account(email="plain@example.com")))
    assert error_of(plain.post("/auth/step_up", {"code": "123456"}), 409)["code"] == "no_second_factor"
    # Without a factor nothing needs a step-up.
    assert plain.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "cron"}}}).status_code == 201
    _, secret = enrol_totp(ada)
    assert error_of(ada.post("/auth/step_up", {"code": "000000"}), 401)["code"] == "invalid_code"
    assert error_of(ada.post("/auth/step_up", {}), 422)["source"]["pointer"] == "/code"
    assert error_of(ApiClient(app.test_client()).post("/auth/step_up", {"code": "1"}), 401)["code"] == \
        "unauthenticated"


def test_an_organization_policy_forces_enrolment_at_the_next_sign_in(app, factory):
    org = factory.organization(policies={"mfa_required": True})
    factory.account(email="bob@example.com", organization_id=org.id)
    first = assert_jsonapi(login(app, "bob@example.com"), 200)
    assert first["meta"]["mfa_enrollment_required"] is True and "refresh_token" not in first["meta"]
    limited = ApiClient(app.test_client(), first["meta"]["token"])
    assert limited.get("/accounts/me").status_code == 200
    for answer in (limited.get("/accounts"), limited.get("/account_sessions"),
                   limited.post("/api_keys", {"data": {"type": "api_keys", "attributes": {"name": "x"}}}),
                   limited.patch("/accounts/me", {"data": {"type": "accounts", "attributes": {"preferences": {}}}})):
        assert error_of(answer, 403)["code"] == "mfa_enrollment_required"
    created = assert_jsonapi(limited.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "totp"}}}), 201)
    assert limited.get("/mfa_factors").status_code == 200
    assert_jsonapi(limited.post(f"/mfa_factors/{created['data']['id']}/verify",
                                {"code": code(created["meta"]["secret"])}), 200)
    # Verified: the limit is lifted in this session, which has now proven a second factor.
    assert limited.get("/account_sessions").status_code == 200
    # The next sign-in is two-step.
    assert login(app, "bob@example.com").get_json()["meta"]["mfa_required"] is True


def test_a_unit_policy_applies_to_its_members_and_those_below(app, factory):
    org = factory.organization()
    top = factory.unit(org, name="top")
    below = factory.unit(org, name="below", parent=top)
    elsewhere = factory.unit(org, name="elsewhere")
    from iam.models import OrganizationalUnit
    with app.app_context():
        db.session.execute(update(OrganizationalUnit).where(OrganizationalUnit.id == top.id)
                           .values(policies={"mfa_required": True}))
        db.session.commit()
    for email, unit in (("in@example.com", below), ("out@example.com", elsewhere)):
        person = factory.person(org, organizational_unit_id=unit.id)
        factory.account(email=email, organization_id=org.id, person_id=person.id)
    assert login(app, "in@example.com").get_json()["meta"].get("mfa_enrollment_required") is True
    assert "mfa_enrollment_required" not in login(app, "out@example.com").get_json()["meta"]


def test_admins_list_and_delete_the_factors_of_accounts_they_administer(app, factory, admin):
    acme, other = factory.organization(slug="acme"), factory.organization(slug="other")
    owner = factory.account(email="lost@acme.example", organization_id=acme.id)
    owner_client = ApiClient(app.test_client(), factory.token(owner))
    factor_id, _ = enrol_totp(owner_client)
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        email="oa@acme.example", organization_id=acme.id, roles=[{"name": "org_admin", "scopes": {
            "organization": [acme.id]}}])))
    stranger = ApiClient(app.test_client(), factory.token(factory.account(
        email="oa@other.example", organization_id=other.id, roles=[{"name": "org_admin", "scopes": {
            "organization": [other.id]}}])))
    listed = assert_jsonapi(org_admin.get("/mfa_factors", {"filter[account_id]": str(owner.id)}), 200)
    assert [f["id"] for f in listed["data"]] == [factor_id]
    # Another organization's admin: it does not exist for them.
    assert assert_jsonapi(stranger.get("/mfa_factors"), 200)["data"] == []
    assert error_of(stranger.get(f"/mfa_factors/{factor_id}"), 404)
    assert error_of(stranger.delete(f"/mfa_factors/{factor_id}"), 404)
    # Nobody else enrols or verifies for the owner.
    assert error_of(org_admin.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "totp", "account_id": owner.id}}}), 403)
    # The lost phone: the org_admin removes it, audited; the owner signs in with a password again.
    assert org_admin.delete(f"/mfa_factors/{factor_id}").status_code == 204
    with app.app_context():
        assert db.session.scalars(select(MfaFactor)).all() == []
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "mfa_factors",
                                                            AuditEvent.action == "delete")).one()
        assert event.resource_id == factor_id
    assert "token" in login(app, "lost@acme.example").get_json()["meta"]
    listed = assert_jsonapi(admin.get("/accounts", {"filter[mfa_enabled]": "false"}), 200)
    assert str(owner.id) in [a["id"] for a in listed["data"]]
