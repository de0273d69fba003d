"""Home-realm discovery (POST /auth/login_url) and the password sign-in an identity provider forbids.

The answer depends only on the email's domain: never on whether an account exists. A return_to
must lie under IAM_SSO_RETURN_URLS (same scheme, host and port, a path under the entry's)."""
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from iam.extensions import db
from iam.models import IdentityProvider, IdentityProviderDomain
from iam.sso.realm import return_to_allowed
from tests.helpers import PASSWORD, assert_jsonapi, error_of

RETURN_URLS = ["https://app.example.com/signed-in", "http://localhost:3000"]


@pytest.fixture
def org(factory):
    return factory.organization(slug="acme")


@pytest.fixture
def provider(app, org):
    with app.app_context():
        row = IdentityProvider(organization_id=org.id, name="Acme", issuer="https://idp.acme.example", client_id="iam",
                               email_domains=["acme.example"], domains=[IdentityProviderDomain(domain="acme.example")])
        db.session.add(row)
        db.session.commit()
        return row.id


@pytest.fixture
def return_urls(app):
    app.config["IAM_SSO_RETURN_URLS"] = RETURN_URLS
    yield RETURN_URLS
    app.config["IAM_SSO_RETURN_URLS"] = []


def set_provider(app, provider_id, **values):
    with app.app_context():
        row = db.session.get(IdentityProvider, provider_id)
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()


def ask(client, body):
    return client.post("/auth/login_url", body)


def test_an_email_of_a_providers_domain_signs_in_through_it(client, provider, return_urls):
    meta = assert_jsonapi(ask(client, {"email": "Ada@ACME.example"}), 200)["meta"]
    assert meta["method"] == "sso" and meta["identity_provider_id"] == str(provider)
    url = urlsplit(meta["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://127.0.0.1:5000/api/v3/iam/auth/sso/start"
    assert parse_qs(url.query) == {"identity_provider_id": [str(provider)], "login_hint": ["Ada@ACME.example"]}
    with_return = assert_jsonapi(ask(client, {"email": "ada@acme.example",
                                              "return_to": "https://app.example.com/signed-in?tab=1"}), 200)["meta"]
    assert parse_qs(urlsplit(with_return["url"]).query)["return_to"] == ["https://app.example.com/signed-in?tab=1"]
    # A JSON:API body works as well.
    wrapped = {"data": {"type": "login_urls", "attributes": {"email": "ada@acme.example"}}}
    assert assert_jsonapi(ask(client, wrapped), 200)["meta"]["method"] == "sso"


def test_other_domains_and_disabled_providers_answer_password(app, client, provider):
    for email in ("ada@example.org", "ada@sub.acme.example", "no-domain", "ada@"):
        assert assert_jsonapi(ask(client, {"email": email}), 200)["meta"] == {"method": "password"}
    set_provider(app, provider, enabled=False)
    assert assert_jsonapi(ask(client, {"email": "ada@acme.example"}), 200)["meta"] == {"method": "password"}


def test_the_answer_never_tells_whether_an_account_exists(app, client, factory, org, provider):
    factory.account(email="ada@acme.example", organization_id=org.id)
    factory.account(email="bob@example.org")

    def answer(email):
        response = ask(client, {"email": email})
        headers = {k: v for k, v in response.headers if k not in ("X-Request-ID", "Date")}
        body = response.get_json()
        url = body["meta"].get("url")
        if url:  # the login hint is the email asked about: compare the rest
            body["meta"]["url"] = url.replace(quote(email), "EMAIL")
        return response.status_code, headers, body

    # Addresses of the same length (the login hint is in the URL): one has an account, one has none.
    assert answer("ada@acme.example") == answer("eve@acme.example")
    assert answer("bob@example.org") == answer("zed@example.org")


@pytest.mark.parametrize("return_to", [
    "https://app.example.com.evil.example/signed-in",  # another host that starts like it
    "https://app.example.com/signed-inx",              # not at a path boundary
    "https://app.example.com/other",
    "http://app.example.com/signed-in",                # another scheme
    "https://app.example.com:8443/signed-in",          # another port
    "https://user@app.example.com/signed-in",          # credentials
    "https://app.example.com/signed-in#fragment",
    "https://app.example.com\\@evil.example/signed-in",
    "javascript:alert(1)",
    "//app.example.com/signed-in",
    "/signed-in",
    "",
])
def test_a_return_to_outside_the_allowlist_is_a_400(client, provider, return_urls, return_to):
    error = error_of(ask(client, {"email": "ada@acme.example", "return_to": return_to}), 400)
    assert (error["code"], error["source"]["pointer"]) == ("invalid_return_to", "/return_to")


def test_return_to_matching_rules():
    allowed = RETURN_URLS
    assert return_to_allowed("https://app.example.com/signed-in", allowed)
    assert return_to_allowed("https://APP.example.com/signed-in/deeper?x=1", allowed)
    assert return_to_allowed("http://localhost:3000/anything", allowed)
    assert not return_to_allowed("http://localhost:3001/anything", allowed)
    assert not return_to_allowed("http://localhost/anything", allowed)
    assert not return_to_allowed("https://app.example.com/signed-in", [])  # none allowed by default
    assert not return_to_allowed("https://[::1/x", allowed)


def test_no_return_to_is_allowed_by_default(client, provider):
    error = error_of(ask(client, {"email": "ada@acme.example", "return_to": "https://app.example.com/signed-in"}),
                     400)
    assert error["code"] == "invalid_return_to"


@pytest.mark.parametrize("body, pointer", [({}, "/email"), ({"email": ""}, "/email"), ({"email": 5}, "/email"),
                                           ({"email": "a@b.example", "extra": 1}, "/extra")])
def test_bad_bodies_are_422s(client, body, pointer):
    assert error_of(ask(client, body), 422)["source"]["pointer"] == pointer


# ------------------------------------------------------------- the password sign-in it forbids

def login(client, email):
    return client.post("/auth/login", {"email": email, "password": PASSWORD})


def test_an_enforced_provider_stops_password_sign_in_for_its_organization(app, client, factory, org, provider):
    factory.account(email="ada@acme.example", organization_id=org.id)
    factory.account(email="bob@example.org")  # another organization: not concerned
    assert_jsonapi(login(client, "ada@acme.example"), 200)
    set_provider(app, provider, enforced=True)
    refused = login(client, "ada@acme.example")
    wrong_password = client.post("/auth/login", {"email": "bob@example.org", "password": "not the password"})
    # The same 401 as every failed login: nothing tells that the password was right.
    assert refused.status_code == wrong_password.status_code == 401
    assert refused.get_json() == wrong_password.get_json()
    assert refused.headers["WWW-Authenticate"] == wrong_password.headers["WWW-Authenticate"]
    assert_jsonapi(login(client, "bob@example.org"), 200)
    set_provider(app, provider, enabled=False)  # a disabled provider enforces nothing
    assert_jsonapi(login(client, "ada@acme.example"), 200)


def test_an_sso_account_never_signs_in_with_a_password(client, factory, org):
    factory.account(email="sso@acme.example", organization_id=org.id, auth_type="sso")
    assert error_of(login(client, "sso@acme.example"), 401)["code"] == "invalid_credentials"
