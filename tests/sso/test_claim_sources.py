"""Where the email and its verification may come from, against the forger (forger.py) through the
real flow: a thin ID token completed from UserInfo (Okta's org server), Entra's `xms_edov`, a
hosted-domain claim (Google's `hd`), an issuer's documented alias, and emails that are not emails."""
import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import Account, Person
from iam.sso import flow, id_token
from tests.sso.forger import DROP, Recipe, assert_refused, assert_signed_in, sign_in


def test_a_thin_id_token_is_completed_from_userinfo(app, forger, provider_id):
    forger.recipe = Recipe(claims={"email_verified": DROP, "given_name": DROP, "family_name": DROP},
                           userinfo={"email_verified": True, "given_name": "Ada", "family_name": "Lovelace"})
    meta = assert_signed_in(app, sign_in(app.test_client(), provider_id))
    assert forger.userinfo_calls == 1
    with app.app_context():
        account = db.session.get(Account, int(meta["account_id"]))
        person = db.session.get(Person, account.person_id)
        assert (person.first_name, person.last_name) == ("Ada", "Lovelace")


def test_a_complete_id_token_needs_no_userinfo(app, forger, provider_id):
    assert_signed_in(app, sign_in(app.test_client(), provider_id))
    assert forger.userinfo_calls == 0


def test_the_id_tokens_own_claims_win_over_userinfo(app, forger, provider_id):
    forger.recipe = Recipe(claims={"email_verified": DROP}, userinfo={"email_verified": True,
                                                                      "email": "mallory@acme.example"})
    meta = assert_signed_in(app, sign_in(app.test_client(), provider_id))
    with app.app_context():
        assert db.session.get(Account, int(meta["account_id"])).email == "ada@acme.example"


@pytest.mark.parametrize("recipe, reason, status", [
    pytest.param(Recipe(claims={"email_verified": DROP}, userinfo={"sub": "someone-else", "email_verified": True}),
                 "another subject", 401, id="userinfo about another sub"),
    pytest.param(Recipe(claims={"email_verified": DROP}, userinfo={"email_verified": False}),
                 "has not verified", 401, id="userinfo unverified too"),
    pytest.param(Recipe(claims={"email_verified": DROP}, userinfo_status=500), "unavailable", 503,
                 id="userinfo failing"),
])
def test_userinfo_refusals(app, forger, provider_id, recipe, reason, status):
    forger.recipe = recipe
    code = "sso_failed" if status == 401 else "identity_provider_unavailable"
    assert_refused(app, sign_in(app.test_client(), provider_id), reason, status=status, code=code)


def test_entras_xms_edov_counts_as_verified(app, forger, provider_id):
    forger.recipe = Recipe(claims={"email_verified": DROP, "xms_edov": True}, userinfo={"email_verified": DROP})
    assert_signed_in(app, sign_in(app.test_client(), provider_id))


def test_xms_edov_false_is_unverified(app, forger, provider_id):
    forger.recipe = Recipe(claims={"email_verified": DROP, "xms_edov": False}, userinfo={"email_verified": DROP})
    assert_refused(app, sign_in(app.test_client(), provider_id), "has not verified")


@pytest.mark.parametrize("hd, signs_in", [("acme.example", True), ("ACME.example", True), (DROP, False),
                                          ("other.example", False)])
def test_a_hosted_domain_claim_must_be_one_of_the_providers_domains(app, forger, provider_id, monkeypatch, hd,
                                                                    signs_in):
    """As for Google's `hd`: the forger's issuer stands for https://accounts.google.com here."""
    monkeypatch.setitem(flow.HOSTED_DOMAIN_CLAIMS, forger.issuer, "hd")
    forger.recipe = Recipe(claims={"hd": hd}, userinfo={"hd": DROP})
    answer = sign_in(app.test_client(), provider_id)
    if signs_in:
        assert_signed_in(app, answer)
    else:
        assert_refused(app, answer, "organization's own domain at the provider (hd)")


def test_an_issuers_documented_alias_is_accepted(app, forger, provider_id, monkeypatch):
    """As for Google's `accounts.google.com`."""
    monkeypatch.setitem(id_token.ISSUER_ALIASES, forger.issuer, ("forger.legacy",))
    forger.recipe = Recipe(claims={"iss": "forger.legacy"})
    assert_signed_in(app, sign_in(app.test_client(), provider_id))


@pytest.mark.parametrize("email", ["mallory@evil.example@acme.example", "@acme.example", "a b\nc@acme.example",
                                   "<x>@acme.example", "ada@acme.example\n"])
def test_an_email_that_is_not_an_email_address_is_refused(app, forger, provider_id, email):
    forger.recipe = Recipe(claims={"email": email})
    event = assert_refused(app, sign_in(app.test_client(), provider_id), "is not an email address")
    assert "\n" not in event.changes["reason"]
    with app.app_context():
        assert db.session.scalars(select(Account)).all() == []
