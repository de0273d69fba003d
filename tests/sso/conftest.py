"""A real OpenID provider for the single sign-on tests: oidc-provider-mock (PyPI), an Authlib
provider serving discovery, JWKS, the authorization and token endpoints and signed ID tokens,
run on 127.0.0.1 by the suite."""
import pytest
from sqlalchemy import update
from oidc_provider_mock import run_server_in_thread

from iam import secret_store
from iam.extensions import db
from iam.models import IdentityProvider, IdentityProviderDomain, Organization
from iam.resources.identity_providers import SECRET_PURPOSE
from iam.sso import id_token
from iam.sso import provider as providers
from tests.sso.forger import Forger


@pytest.fixture(scope="session")
def oidc_provider():
    """(issuer URL, the server) of a running provider, for the whole session."""
    with run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}", server


@pytest.fixture(autouse=True)
def _fresh_metadata():
    providers.forget()
    id_token.forget()
    yield
    providers.forget()
    id_token.forget()


@pytest.fixture
def org(factory):
    return factory.organization(slug="acme")


@pytest.fixture
def make_provider(app, org, oidc_provider):
    """An identity provider row of `org` pointing at the running provider (attributes overridable)."""
    def make(**values):
        values.setdefault("issuer", oidc_provider[0])
        secret = values.pop("client_secret", "iam-test-secret")
        domains = values.pop("email_domains", ["acme.example"])
        with app.app_context():
            if secret is not None:
                values["client_secret_sealed"] = secret_store.seal(secret, SECRET_PURPOSE)
            values.setdefault("organization_id", org.id)
            row = IdentityProvider(name="Acme", client_id=values.pop("client_id", "iam-test-client"),
                                   email_domains=domains, domains=[IdentityProviderDomain(domain=d) for d in domains],
                                   **values)
            db.session.add(row)
            db.session.commit()
            return row.id
    return make


# The forger (forger.py): a provider that issues whatever ID token a test's recipe says.

@pytest.fixture(scope="session")
def _running_forger():
    with Forger().serve() as forger:
        yield forger


@pytest.fixture
def forger(_running_forger):
    _running_forger.reset()
    yield _running_forger
    _running_forger.reset()


@pytest.fixture
def provider_id(make_provider, forger):
    """A provider row for the forger that creates accounts on first sign-in (so that a wrongly
    accepted token would show as a new account)."""
    return make_provider(issuer=forger.issuer, jit_provisioning=True)


@pytest.fixture
def policy(app, org):
    """An mfa_required policy on the provider's organization."""
    with app.app_context():
        db.session.execute(update(Organization).where(Organization.id == org.id)
                           .values(policies={"mfa_required": True}))
        db.session.commit()
