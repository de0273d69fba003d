"""oauth_clients: registered by admins and org_admins, the secret answered once and stored as a
digest, rotated; the rules of client types, grants and service accounts; tenancy."""
import pytest
from sqlalchemy import select

from iam.extensions import db
from iam.models import AuditEvent, OAuthClient
from iam.resources.common import digest
from tests.helpers import ApiClient, assert_jsonapi, error_of


def client_body(**attributes):
    attributes.setdefault("name", "Reports")
    attributes.setdefault("redirect_uris", ["https://reports.example.com/callback"])
    return {"data": {"type": "oauth_clients", "attributes": attributes}}


@pytest.fixture
def org(factory):
    return factory.organization(slug="acme")


def test_a_confidential_client_gets_its_secret_once(app, admin, org):
    created = assert_jsonapi(admin.post("/oauth_clients", client_body(organization_id=org.id)), 201)
    attributes, secret = created["data"]["attributes"], created["meta"]["client_secret"]
    assert attributes["client_type"] == "confidential" and attributes["token_endpoint_auth_method"] == \
        "client_secret_basic"
    assert attributes["grant_types"] == ["authorization_code"] and attributes["scopes"] == ["openid", "profile",
                                                                                             "email"]
    assert len(attributes["client_id"]) >= 24 and len(secret) >= 43
    shown = admin.get(f"/oauth_clients/{created['data']['id']}").get_data(as_text=True)
    assert secret not in shown and '"client_secret"' not in shown and "secret_digest" not in shown
    assert error_of(admin.get("/oauth_clients", {"fields[oauth_clients]": "secret_digest"}), 400)
    with app.app_context():
        row = db.session.scalars(select(OAuthClient)).one()
        assert row.secret_digest == digest(secret) and secret not in repr(vars(row))
        events = repr([(e.action, e.changes) for e in db.session.scalars(select(AuditEvent))])
    assert secret not in events and "create" in events
    rotated = assert_jsonapi(admin.post(f"/oauth_clients/{created['data']['id']}/rotate_secret"), 200)
    assert rotated["meta"]["client_secret"] != secret
    with app.app_context():
        assert db.session.scalars(select(OAuthClient)).one().secret_digest == digest(rotated["meta"]["client_secret"])


def test_a_public_client_has_no_secret(admin, org):
    created = assert_jsonapi(admin.post("/oauth_clients", client_body(organization_id=org.id, client_type="public")),
                             201)
    assert "client_secret" not in created.get("meta", {})
    assert created["data"]["attributes"]["token_endpoint_auth_method"] == "none"
    assert error_of(admin.post(f"/oauth_clients/{created['data']['id']}/rotate_secret"), 409)["code"] == \
        "public_client"


@pytest.mark.parametrize("attributes, pointer", [
    ({"client_type": "public", "token_endpoint_auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
    ({"token_endpoint_auth_method": "none"}, "token_endpoint_auth_method"),
    ({"client_type": "public", "grant_types": ["client_credentials"]}, "grant_types"),
    ({"grant_types": ["client_credentials"]}, "service_account_id"),
    ({"grant_types": ["refresh_token"]}, "grant_types"),
    ({"redirect_uris": []}, "redirect_uris"),
    ({"redirect_uris": ["http://reports.example.com/cb"]}, "redirect_uris"),
    ({"redirect_uris": ["https://reports.example.com/cb#x"]}, "redirect_uris"),
    ({"redirect_uris": ["reports"]}, "redirect_uris"),
    ({"grant_types": ["implicit"]}, "grant_types"),
    ({"scopes": ["admin"]}, "scopes"),
])
def test_invalid_clients_are_422s(app, admin, org, attributes, pointer):
    error = error_of(admin.post("/oauth_clients", client_body(organization_id=org.id, **attributes)), 422)
    assert error["source"]["pointer"].startswith(f"/data/attributes/{pointer}")
    with app.app_context():
        assert db.session.scalars(select(OAuthClient)).all() == []


def test_loopback_redirects_for_native_and_development_clients(admin, org):
    body = client_body(organization_id=org.id, client_type="public", redirect_uris=["http://127.0.0.1:8765/cb"])
    assert admin.post("/oauth_clients", body).status_code == 201


def test_org_admins_manage_their_organizations_clients_only(app, factory, admin, org):
    other = factory.organization(slug="other")
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        email="oa@acme.example", organization_id=org.id,
        roles=[{"name": "org_admin", "scopes": {"organization": [org.id]}}])))
    mine = assert_jsonapi(org_admin.post("/oauth_clients", client_body(organization_id=org.id)), 201)
    theirs = assert_jsonapi(admin.post("/oauth_clients", client_body(organization_id=other.id)), 201)
    assert [c["id"] for c in assert_jsonapi(org_admin.get("/oauth_clients"), 200)["data"]] == [mine["data"]["id"]]
    assert error_of(org_admin.get(f"/oauth_clients/{theirs['data']['id']}"), 404)
    assert error_of(org_admin.post(f"/oauth_clients/{theirs['data']['id']}/rotate_secret"), 404)
    assert error_of(org_admin.post("/oauth_clients", client_body(organization_id=other.id)), 422)
    assert error_of(org_admin.post("/oauth_clients", client_body()), 403)  # no organization: admins only
    plain = ApiClient(app.test_client(), factory.token(factory.account(email="p@acme.example",
                                                                       organization_id=org.id)))
    assert assert_jsonapi(plain.get("/oauth_clients"), 200)["data"] == []
    assert error_of(plain.post("/oauth_clients", client_body(organization_id=org.id)), 403)


def test_the_service_account_must_be_one_the_caller_may_act_for(app, factory, admin, org):
    other = factory.organization(slug="other")
    robot = factory.account(email="robot@acme.example", organization_id=org.id, account_type="service_account")
    boss = factory.account(email="boss@acme.example", organization_id=org.id, roles=["admin"])
    outsider = factory.account(email="robot@other.example", organization_id=other.id)
    org_admin = ApiClient(app.test_client(), factory.token(factory.account(
        email="oa@acme.example", organization_id=org.id,
        roles=[{"name": "org_admin", "scopes": {"organization": [org.id]}}])))

    def body(account):
        return client_body(organization_id=org.id, grant_types=["client_credentials"], redirect_uris=[],
                           service_account_id=account.id)

    assert org_admin.post("/oauth_clients", body(robot)).status_code == 201
    for account in (boss, outsider):  # beyond the caller's reach, or unseen
        error = error_of(org_admin.post("/oauth_clients", body(account)), 422)
        assert error["source"]["pointer"] == "/data/attributes/service_account_id"
    # An admin may name any account, but of the client's organization only.
    assert error_of(admin.post("/oauth_clients", body(outsider)), 422)["source"]["pointer"] == \
        "/data/attributes/service_account_id"
