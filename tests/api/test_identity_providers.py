"""identity_providers: per organization, managed by admins and the organization's org_admins; the
client secret is write-only, sealed at rest, absent from every answer and audit record; an
email domain belongs to one provider at most. account_identities: read-only links."""
import json

import pytest
from sqlalchemy import select, text

from iam import secret_store
from iam.extensions import db
from iam.models import AccountIdentity, AuditEvent, IdentityProvider
from tests.helpers import ApiClient, assert_jsonapi, error_of

SECRET = "s3cr3t-client-secret-value-0123456789"


@pytest.fixture
def org(factory):
    return factory.organization(slug="acme")


def provider_body(org, **attributes):
    return {"data": {"type": "identity_providers", "attributes": {
        "organization_id": org.id, "name": "Acme Workspace", "issuer": "https://accounts.acme.example",
        "client_id": "iam-client", "client_secret": SECRET, "email_domains": ["Acme.example"], **attributes}}}


def org_admin_of(factory, org):
    return factory.account(organization_id=org.id, roles=[{"name": "org_admin", "scopes": {"organization": [org.id]}}])


def test_a_provider_is_created_with_defaults_and_its_secret_is_never_rendered(app, admin, org):
    created = assert_jsonapi(admin.post("/identity_providers", provider_body(org)), 201)["data"]
    attributes = created["attributes"]
    assert "client_secret" not in attributes and "client_secret_sealed" not in attributes
    assert created["meta"] == {"redirect_uri": "http://127.0.0.1:5000/api/v3/iam/auth/sso/callback"}
    assert attributes["email_domains"] == ["acme.example"]  # compared case-insensitively: kept lower case
    assert attributes["scopes"] == "openid email profile"
    assert attributes["claim_mapping"] == {"first_name": "given_name", "last_name": "family_name",
                                           "picture_url": "picture"}
    assert (attributes["kind"], attributes["enabled"], attributes["enforced"], attributes["jit_provisioning"]) == \
        ("oidc", True, False, False)
    # Asking for it by name is asking for a field that does not exist.
    assert error_of(admin.get(f"/identity_providers/{created['id']}", {"fields[identity_providers]": "client_secret"}),
                    400)["code"] == "invalid_fields"
    assert error_of(admin.get("/identity_providers", {"filter[client_secret]": SECRET}), 400)
    everything = [admin.get(f"/identity_providers/{created['id']}"), admin.get("/identity_providers"),
                  admin.get(f"/organizations/{org.id}", {"included": ""}), admin.get("/audit_events")]
    for answer in everything:
        assert SECRET not in answer.get_data(as_text=True)
    with app.app_context():
        sealed = db.session.execute(text("SELECT client_secret_sealed FROM identity_providers")).scalar()
        assert SECRET not in sealed and sealed.startswith("v1.")
        assert secret_store.unseal(sealed, "identity_providers.client_secret") == SECRET
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "identity_providers")).all()
    assert events and all(SECRET not in json.dumps(e.changes) for e in events)


def test_the_sealed_secret_does_not_open_without_the_key_or_in_another_column(app, admin, org):
    assert_jsonapi(admin.post("/identity_providers", provider_body(org)), 201)
    with app.app_context():
        sealed = db.session.execute(text("SELECT client_secret_sealed FROM identity_providers")).scalar()
        other_key = {**app.config, "IAM_ENCRYPTION_KEY": "another-encryption-key-of-32-characters!"}
        with pytest.raises(secret_store.Unsealable):
            secret_store.unseal(sealed, "identity_providers.client_secret", other_key)
        with pytest.raises(secret_store.Unsealable):
            secret_store.unseal(sealed, "mfa_factors.secret")  # sealed for one purpose only
        tampered = sealed[:-3] + ("AAA" if not sealed.endswith("AAA") else "BBB")
        with pytest.raises(secret_store.Unsealable):
            secret_store.unseal(tampered, "identity_providers.client_secret")
        # A retired key still opens what it sealed while it is listed among the old keys.
        rotated = {**app.config, "IAM_ENCRYPTION_KEY": "the-new-encryption-key-of-32-chars-!!",
                   "IAM_ENCRYPTION_OLD_KEYS": [app.config["IAM_SECRET_KEY"]]}
        assert secret_store.unseal(sealed, "identity_providers.client_secret", rotated) == SECRET
        assert not secret_store.is_current(sealed, rotated)


def test_changing_and_clearing_the_secret_and_the_domains(app, admin, org):
    created = assert_jsonapi(admin.post("/identity_providers", provider_body(org)), 201)["data"]
    path = f"/identity_providers/{created['id']}"

    def patch(**attributes):
        return admin.patch(path, {"data": {"type": "identity_providers", "id": created["id"],
                                           "attributes": attributes}})

    assert_jsonapi(patch(name="Renamed"), 200)
    with app.app_context():
        provider = db.session.get(IdentityProvider, int(created["id"]))
        assert secret_store.unseal(provider.client_secret_sealed, "identity_providers.client_secret") == SECRET
    assert_jsonapi(patch(client_secret="a-new-secret"), 200)
    with app.app_context():
        provider = db.session.get(IdentityProvider, int(created["id"]))
        assert secret_store.unseal(provider.client_secret_sealed, "identity_providers.client_secret") == "a-new-secret"
    assert_jsonapi(patch(client_secret=None), 200)
    with app.app_context():
        assert db.session.get(IdentityProvider, int(created["id"])).client_secret_sealed is None
    body = assert_jsonapi(patch(email_domains=["acme.example", "EU.Acme.example"]), 200)
    assert body["data"]["attributes"]["email_domains"] == ["acme.example", "eu.acme.example"]
    listed = assert_jsonapi(admin.get("/identity_providers", {"filter[email_domain]": "EU.acme.EXAMPLE"}), 200)
    assert [item["id"] for item in listed["data"]] == [created["id"]]


def test_an_email_domain_belongs_to_one_provider_at_most(admin, factory, org):
    assert_jsonapi(admin.post("/identity_providers", provider_body(org)), 201)
    other = factory.organization(slug="other")
    clash = error_of(admin.post("/identity_providers", provider_body(other, email_domains=["ACME.example"])), 409)
    assert clash["code"] == "not_unique" and clash["source"]["pointer"] == "/data/attributes/email_domains"
    second = assert_jsonapi(admin.post("/identity_providers", provider_body(other, email_domains=["other.example"])),
                            201)["data"]
    clash = error_of(admin.patch(f"/identity_providers/{second['id']}", {"data": {
        "type": "identity_providers", "id": second["id"], "attributes": {"email_domains": ["acme.example"]}}}), 409)
    assert clash["code"] == "not_unique"


@pytest.mark.parametrize("attributes, pointer", [
    ({"issuer": "http://accounts.acme.example"}, "issuer"),          # plain http away from loopback
    ({"issuer": "https://accounts.acme.example?x=1"}, "issuer"),
    ({"issuer": "ftp://accounts.acme.example"}, "issuer"),
    ({"scopes": "email profile"}, "scopes"),                          # no openid
    ({"email_domains": ["not a domain"]}, "email_domains"),
    ({"email_domains": ["@acme.example"]}, "email_domains"),
    ({"kind": "saml"}, "kind"),
    ({"claim_mapping": {"password_hash": "sub"}}, "claim_mapping"),
    ({"claim_mapping": {"first_name": 7}}, "claim_mapping"),
    ({"default_roles": [{"name": "bad name!"}]}, "default_roles"),
    ({"client_id": ""}, "client_id"),
])
def test_bad_attributes_are_422s_naming_the_attribute(admin, org, attributes, pointer):
    error = error_of(admin.post("/identity_providers", provider_body(org, **attributes)), 422)
    assert error["source"]["pointer"].startswith(f"/data/attributes/{pointer}")


def test_http_issuers_on_loopback_are_accepted(admin, org):
    assert_jsonapi(admin.post("/identity_providers", provider_body(org, issuer="http://127.0.0.1:9400")), 201)


def test_org_admins_manage_their_organizations_providers_only(app, admin, factory, org):
    other = factory.organization(slug="other")
    theirs = assert_jsonapi(admin.post("/identity_providers", provider_body(other, email_domains=["other.example"])),
                            201)["data"]
    org_admin = ApiClient(app.test_client(), factory.token(org_admin_of(factory, org)))
    mine = assert_jsonapi(org_admin.post("/identity_providers", provider_body(org)), 201)["data"]
    listed = assert_jsonapi(org_admin.get("/identity_providers"), 200)
    assert [item["id"] for item in listed["data"]] == [mine["id"]]
    assert error_of(org_admin.get(f"/identity_providers/{theirs['id']}"), 404)
    assert error_of(org_admin.delete(f"/identity_providers/{theirs['id']}"), 404)
    # Another organization does not exist for them: its id is no organization at all.
    refused = error_of(org_admin.post("/identity_providers", provider_body(other, email_domains=["x.example"])), 422)
    assert (refused["code"], refused["source"]["pointer"]) == ("not_found", "/data/attributes/organization_id")
    # The roles it hands out are roles the org admin could grant: never admin.
    assert error_of(org_admin.post("/identity_providers", provider_body(
        org, email_domains=["y.example"], default_roles=[{"name": "admin"}])), 403)
    member = ApiClient(app.test_client(), factory.token(factory.account(organization_id=org.id)))
    assert assert_jsonapi(member.get("/identity_providers"), 200)["data"] == []
    assert error_of(member.post("/identity_providers", provider_body(org, email_domains=["z.example"])), 403)
    assert org_admin.delete(f"/identity_providers/{mine['id']}").status_code == 204


def test_default_roles_name_rows_of_the_providers_organization(admin, factory, org):
    other = factory.organization(slug="other")
    error = error_of(admin.post("/identity_providers", provider_body(
        org, default_roles=[{"name": "viewer", "scopes": {"organization": [other.id]}}])), 422)
    assert error["source"]["pointer"].startswith("/data/attributes/default_roles/0/scopes")
    created = assert_jsonapi(admin.post("/identity_providers", provider_body(
        org, default_roles=[{"name": "viewer", "scopes": {"organization": [org.id]}}])), 201)["data"]
    assert created["attributes"]["default_roles"] == [{"name": "viewer", "scopes": {"organization": [org.id]}}]


def test_account_identities_are_read_only_and_unlinked_by_the_owner_or_an_admin(app, admin, factory, org):
    provider_id = int(assert_jsonapi(admin.post("/identity_providers", provider_body(org)), 201)["data"]["id"])
    owner = factory.account(organization_id=org.id)
    stranger = factory.account(organization_id=factory.organization(slug="elsewhere").id)
    with app.app_context():
        links = [AccountIdentity(account_id=owner.id, identity_provider_id=provider_id, subject=f"sub-{n}",
                                 email="o@acme.example") for n in range(2)]
        db.session.add_all(links)
        db.session.commit()
        first, second = (link.id for link in links)
    as_owner = ApiClient(app.test_client(), factory.token(owner))
    as_stranger = ApiClient(app.test_client(), factory.token(stranger))
    mine = assert_jsonapi(as_owner.get("/account_identities"), 200)["data"]
    assert sorted(int(item["id"]) for item in mine) == [first, second]
    assert mine[0]["attributes"]["subject"].startswith("sub-")
    assert assert_jsonapi(as_stranger.get("/account_identities"), 200)["data"] == []
    assert error_of(as_stranger.delete(f"/account_identities/{first}"), 404)
    assert error_of(as_owner.post("/account_identities", {"data": {"type": "account_identities", "attributes": {}}}),
                    405)
    assert as_owner.delete(f"/account_identities/{first}").status_code == 204
    assert admin.delete(f"/account_identities/{second}").status_code == 204
    assert assert_jsonapi(as_owner.get("/account_identities"), 200)["data"] == []


def test_reseal_secrets_moves_every_secret_to_the_current_key(app, admin, org):
    assert_jsonapi(admin.post("/identity_providers", provider_body(org)), 201)
    old_key = app.config["IAM_SECRET_KEY"]  # sealed under the key derived from it (no IAM_ENCRYPTION_KEY)
    new_key = "the-next-encryption-key-0123456789abcdef"
    app.config.update(IAM_ENCRYPTION_KEY=new_key, IAM_ENCRYPTION_OLD_KEYS=[old_key])
    try:
        done = app.test_cli_runner().invoke(args=["iam", "reseal-secrets"])
        assert done.exit_code == 0 and "resealed 1 secret(s)" in done.output, done.output
        with app.app_context():
            sealed = db.session.scalar(select(IdentityProvider.client_secret_sealed))
        assert secret_store.is_current(sealed, app.config)
        app.config["IAM_ENCRYPTION_OLD_KEYS"] = []  # the old key is gone: the value still opens
        with app.app_context():
            assert secret_store.unseal(sealed, "identity_providers.client_secret") == SECRET
        again = app.test_cli_runner().invoke(args=["iam", "reseal-secrets"])
        assert "resealed 0 secret(s)" in again.output
        app.config["IAM_ENCRYPTION_KEY"] = "a-key-that-sealed-nothing-0123456789abcd"
        lost = app.test_cli_runner().invoke(args=["iam", "reseal-secrets"])
        assert lost.exit_code == 1 and "not opened: identity_providers" in lost.output
        assert SECRET not in lost.output
    finally:
        app.config.update(IAM_ENCRYPTION_KEY="", IAM_ENCRYPTION_OLD_KEYS=[])
