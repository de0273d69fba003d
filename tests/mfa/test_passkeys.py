"""Passkeys for real: the registration and authentication ceremonies driven by a software
authenticator (tests/mfa/authenticator.py) that makes genuine attestation and assertion
responses, checked by the server with the `webauthn` package; a wrong origin, a wrong
challenge, another relying party and a replayed sign counter are refused."""
import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import AuditEvent, MfaFactor
from tests.helpers import ApiClient, assert_jsonapi, error_of
from tests.mfa.authenticator import SoftAuthenticator, b64url
from tests.mfa.helpers import login, second_step

ORIGIN = "http://127.0.0.1:5000"  # IAM_ISSUER in the tests


def register(client, authenticator, origin=ORIGIN, challenge=None):
    created = assert_jsonapi(client.post("/mfa_factors", {"data": {"type": "mfa_factors", "attributes": {
        "kind": "webauthn", "name": "Laptop"}}}), 201)
    options = created["meta"]["options"]
    credential = authenticator.create(options, origin, challenge=challenge)
    return created, options, client.post(f"/mfa_factors/{created['data']['id']}/verify", {"credential": credential})


def passkey_sign_in(app, factor_id, authenticator, **get_options):
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    asked = assert_jsonapi(ApiClient(app.test_client()).post("/auth/mfa/challenge", {
        "mfa_token": token, "factor_id": factor_id}), 200)
    credential = authenticator.get(asked["meta"]["options"], get_options.pop("origin", ORIGIN), **get_options)
    return second_step(app, token, factor_id=factor_id, credential=credential), asked["meta"]["options"], token


def test_registration_and_sign_in_with_a_passkey(app, ada):
    authenticator = SoftAuthenticator()
    created, options, verified = register(ada, authenticator)
    assert options["rp"]["id"] == "127.0.0.1" and options["user"]["name"] == "ada@example.com"
    assert options["challenge"] and {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    assert assert_jsonapi(verified, 200)["data"]["attributes"]["status"] == "active"
    factor_id = created["data"]["id"]
    with app.app_context():
        factor = db.session.get(MfaFactor, int(factor_id))
        assert factor.credential_id == b64url(authenticator.credential_id) and factor.sign_count == 0
    first = login(app, "ada@example.com").get_json()["meta"]
    assert first["mfa_required"] is True and first["factors"] == [{"id": factor_id, "kind": "webauthn",
                                                                   "name": "Laptop"}]
    done, asked, _ = passkey_sign_in(app, factor_id, authenticator)
    assert asked["allowCredentials"][0]["id"] == b64url(authenticator.credential_id)
    body = assert_jsonapi(done, 200)
    assert body["data"]["attributes"]["amr"] == ["pwd", "hwk"] and body["meta"]["token"]
    with app.app_context():
        assert db.session.get(MfaFactor, int(factor_id)).sign_count == 1
    # And again: the counter keeps growing.
    assert passkey_sign_in(app, factor_id, authenticator)[0].status_code == 200


def test_a_registration_from_another_origin_or_for_another_challenge_is_refused(app, ada):
    for kwargs in ({"origin": "https://evil.example"}, {"challenge": b64url(b"x" * 32)}):
        created, _, verified = register(ada, SoftAuthenticator(), **kwargs)
        assert error_of(verified, 401)["code"] == "invalid_code"
        assert assert_jsonapi(ada.get(f"/mfa_factors/{created['data']['id']}"), 200)["data"]["attributes"][
            "status"] == "pending"
    with app.app_context():
        reasons = [e.changes["reason"] for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "mfa_failed").order_by(AuditEvent.id))]
    assert len(reasons) == 2 and all("attestation is refused" in r for r in reasons)


@pytest.mark.parametrize("tamper", [
    {"origin": "https://evil.example"},
    {"challenge": b64url(b"y" * 32)},
    {"rp_id": "evil.example"},
])
def test_an_assertion_from_another_origin_challenge_or_relying_party_is_refused(app, ada, tamper):
    authenticator = SoftAuthenticator()
    created, _, verified = register(ada, authenticator)
    assert_jsonapi(verified, 200)
    done, _, _ = passkey_sign_in(app, created["data"]["id"], authenticator, **tamper)
    assert error_of(done, 401)["code"] == "invalid_code"


def test_a_cloned_authenticator_whose_counter_does_not_grow_is_refused(app, ada):
    authenticator = SoftAuthenticator()
    created, _, verified = register(ada, authenticator)
    assert_jsonapi(verified, 200)
    factor_id = created["data"]["id"]
    twin = authenticator.clone()
    assert passkey_sign_in(app, factor_id, authenticator)[0].status_code == 200  # counter 1
    assert passkey_sign_in(app, factor_id, authenticator)[0].status_code == 200  # counter 2
    twin.sign_count = 1  # the clone's counter is behind: 2 again at its next use
    done, _, _ = passkey_sign_in(app, factor_id, twin)
    assert error_of(done, 401)["code"] == "invalid_code"
    with app.app_context():
        reason = db.session.scalars(select(AuditEvent.changes).where(AuditEvent.action == "mfa_failed")).one()
    assert "sign count" in reason["reason"]  # the library's check, then the conditional UPDATE's


def test_a_replayed_assertion_is_refused(app, ada):
    authenticator = SoftAuthenticator()
    created, _, verified = register(ada, authenticator)
    assert_jsonapi(verified, 200)
    factor_id = created["data"]["id"]
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    asked = ApiClient(app.test_client()).post("/auth/mfa/challenge", {"mfa_token": token, "factor_id": factor_id})
    credential = authenticator.get(asked.get_json()["meta"]["options"], ORIGIN)
    assert second_step(app, token, factor_id=factor_id, credential=credential).status_code == 200
    # The same response again, with a new sign-in: its challenge is not this one.
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    ApiClient(app.test_client()).post("/auth/mfa/challenge", {"mfa_token": token, "factor_id": factor_id})
    assert error_of(second_step(app, token, factor_id=factor_id, credential=credential), 401)["code"] == \
        "invalid_code"


def test_a_passkey_needs_its_challenge_first(app, ada):
    authenticator = SoftAuthenticator()
    created, options, verified = register(ada, authenticator)
    assert_jsonapi(verified, 200)
    token = login(app, "ada@example.com").get_json()["meta"]["mfa_token"]
    credential = authenticator.get({"challenge": b64url(b"z" * 32), "rpId": "127.0.0.1"}, ORIGIN)
    answer = second_step(app, token, factor_id=created["data"]["id"], credential=credential)
    assert error_of(answer, 401)["code"] == "invalid_code"
    assert error_of(ApiClient(app.test_client()).post("/auth/mfa/challenge", {"mfa_token": token,
                                                                               "factor_id": "987654"}), 422)


def test_step_up_with_a_passkey(app, ada):
    authenticator = SoftAuthenticator()
    created, _, verified = register(ada, authenticator)
    assert_jsonapi(verified, 200)
    done, _, _ = passkey_sign_in(app, created["data"]["id"], authenticator)
    client = ApiClient(app.test_client(), done.get_json()["meta"]["token"])
    asked = assert_jsonapi(client.post("/auth/mfa/challenge", {"factor_id": created["data"]["id"]}), 200)
    credential = authenticator.get(asked["meta"]["options"], ORIGIN)
    stepped = assert_jsonapi(client.post("/auth/step_up", {"factor_id": created["data"]["id"],
                                                           "credential": credential}), 200)
    assert stepped["data"]["attributes"]["amr"] == ["pwd", "hwk"]
