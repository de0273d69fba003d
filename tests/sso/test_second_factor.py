"""An mfa_required policy asks a second factor of sign-ins through an identity provider whose
`amr` reports none (contract section 9): the callback answers the second step (or, for an
application, an sso_code the exchange trades for it), and an account without a factor gets a
session that may only enrol one."""
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import ApiClient, assert_jsonapi, error_of
from tests.mfa.helpers import code, enrol_totp, second_step
from tests.sso.flows import EXCHANGE, set_user, sign_in

RETURN_TO = "https://app.example.com/signed-in"


@pytest.fixture
def return_urls(app):
    app.config["IAM_SSO_RETURN_URLS"] = [RETURN_TO]
    yield
    app.config["IAM_SSO_RETURN_URLS"] = []


@pytest.fixture
def enrolled(app, factory, org):
    """An account of the organization with an authenticator app: (its secret)."""
    account = factory.account(email="ada@acme.example", organization_id=org.id)
    _, secret = enrol_totp(ApiClient(app.test_client(), factory.token(account)))
    return secret


def test_the_policy_asks_a_second_factor_the_provider_did_not_report(app, make_provider, oidc_provider, policy,
                                                                      enrolled):
    provider_id = make_provider()
    set_user(oidc_provider[0], "ada-mfa", email="ada@acme.example")
    first = assert_jsonapi(sign_in(app.test_client(), provider_id, "ada-mfa"), 200)
    assert first["meta"]["mfa_required"] is True and "token" not in first["meta"]
    done = assert_jsonapi(second_step(app, first["meta"]["mfa_token"], code=code(enrolled)), 200)
    assert done["data"]["attributes"]["amr"] == ["sso", "otp"] and done["meta"]["refresh_token"]


def test_a_second_factor_the_provider_reports_is_enough(app, make_provider, oidc_provider, policy, enrolled):
    provider_id = make_provider()
    set_user(oidc_provider[0], "ada-mfa2", email="ada@acme.example", amr=["pwd", "mfa"])
    body = assert_jsonapi(sign_in(app.test_client(), provider_id, "ada-mfa2"), 200)
    assert body["meta"]["token"] and body["data"]["attributes"]["amr"] == ["sso"]


def test_without_the_policy_a_sign_in_through_a_provider_is_single_step(app, make_provider, oidc_provider,
                                                                        enrolled):
    provider_id = make_provider()
    set_user(oidc_provider[0], "ada-mfa3", email="ada@acme.example")
    assert assert_jsonapi(sign_in(app.test_client(), provider_id, "ada-mfa3"), 200)["meta"]["token"]


def test_an_application_gets_the_second_step_through_the_exchange(app, make_provider, oidc_provider, policy,
                                                                  enrolled, return_urls):
    provider_id = make_provider()
    set_user(oidc_provider[0], "ada-mfa4", email="ada@acme.example")
    back = sign_in(app.test_client(), provider_id, "ada-mfa4", return_to=RETURN_TO)
    assert back.status_code == 302 and "mfa_token" not in back.headers["Location"]
    sso_code = parse_qs(urlsplit(back.headers["Location"]).query)["sso_code"][0]
    client = ApiClient(app.test_client())
    traded = assert_jsonapi(client.post(EXCHANGE, {"code": sso_code}), 200)
    assert traded["meta"]["mfa_required"] is True and traded["meta"]["factors"][0]["kind"] == "totp"
    assert error_of(client.post(EXCHANGE, {"code": sso_code}), 401)["code"] == "sso_failed"  # once
    done = assert_jsonapi(second_step(app, traded["meta"]["mfa_token"], code=code(enrolled)), 200)
    assert done["data"]["attributes"]["amr"] == ["sso", "otp"]


def test_an_account_without_a_factor_may_only_enrol_one(app, make_provider, oidc_provider, policy, return_urls):
    provider_id = make_provider(jit_provisioning=True)
    set_user(oidc_provider[0], "newbie", email="newbie@acme.example")
    body = assert_jsonapi(sign_in(app.test_client(), provider_id, "newbie"), 200)
    assert body["meta"]["mfa_enrollment_required"] is True and "refresh_token" not in body["meta"]
    limited = ApiClient(app.test_client(), body["meta"]["token"])
    assert error_of(limited.get("/accounts"), 403)["code"] == "mfa_enrollment_required"
    assert limited.get("/accounts/me").status_code == 200
    # Through an application too: the exchange says so.
    back = sign_in(app.test_client(), provider_id, "newbie", return_to=RETURN_TO)
    sso_code = parse_qs(urlsplit(back.headers["Location"]).query)["sso_code"][0]
    traded = assert_jsonapi(ApiClient(app.test_client()).post(EXCHANGE, {"code": sso_code}), 200)
    assert traded["meta"]["mfa_enrollment_required"] is True and "refresh_token" not in traded["meta"]
