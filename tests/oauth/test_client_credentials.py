"""Client credentials against the server on a real socket, with Authlib's client as the
service: the token is a JWT verified against /oauth2/jwks (joserfc), it acts as the client's
service account on this API, and it stops when the account or client cannot go on; keys rotate
without breaking tokens in flight."""
import requests
import pytest
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from iam.extensions import db
from iam.models import Account, SigningKey
from tests.helpers import assert_jsonapi


@pytest.fixture
def service(app, factory, admin):
    """(client_id, client_secret, the service account) of a client-credentials client."""
    org = factory.organization(slug="acme")
    robot = factory.account(email="robot@acme.example", organization_id=org.id, account_type="service_account",
                            password=False)
    created = assert_jsonapi(admin.post("/oauth_clients", {"data": {"type": "oauth_clients", "attributes": {
        "name": "Nightly export", "organization_id": org.id, "grant_types": ["client_credentials"],
        "redirect_uris": [], "scopes": ["roles"], "service_account_id": robot.id}}}), 201)
    return created["data"]["attributes"]["client_id"], created["meta"]["client_secret"], robot


def fetch(live_server, client_id, secret, method="client_secret_basic"):
    session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method)
    return session.fetch_token(f"{live_server}/oauth2/token", grant_type="client_credentials")


def me(live_server, token):
    return requests.get(f"{live_server}/api/v3/iam/accounts/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=10)


def test_a_service_gets_a_signed_token_that_acts_as_its_account(app, live_server, service):
    client_id, secret, robot = service
    token = fetch(live_server, client_id, secret)
    assert token["token_type"] == "Bearer" and token["expires_in"] == app.config["IAM_ACCESS_TOKEN_TTL"]
    assert "refresh_token" not in token
    jwks = requests.get(f"{live_server}/oauth2/jwks", timeout=10).json()
    assert {key["alg"] for key in jwks["keys"]} == {"RS256"} and all("d" not in key for key in jwks["keys"])
    decoded = jwt.decode(token["access_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt" and decoded.header["kid"] == jwks["keys"][0]["kid"]
    claims = decoded.claims
    assert claims["iss"] == app.config["IAM_ISSUER"] and claims["sub"] == str(robot.id)
    assert claims["client_id"] == client_id and claims["aud"] == app.config["IAM_ISSUER"]
    answer = me(live_server, token["access_token"])
    assert answer.status_code == 200 and answer.json()["data"]["id"] == str(robot.id)
    # Disabling the service account stops the token at once.
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == robot.id).values(enabled=False))
        db.session.commit()
    assert me(live_server, token["access_token"]).status_code == 401
    refused = requests.post(f"{live_server}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(client_id, secret), timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"


def test_refusals_are_oauth_errors(app, live_server, service, admin):
    client_id, secret, _ = service
    wrong = requests.post(f"{live_server}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(client_id, "not-the-secret"), timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    unknown = requests.post(f"{live_server}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=("nobody", secret), timeout=10)
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    # The client authenticates the way it is registered, and only with its grants.
    posted = requests.post(f"{live_server}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}, timeout=10)
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"
    other = requests.post(f"{live_server}/oauth2/token", data={"grant_type": "password", "username": "x",
                                                                "password": "y"}, auth=(client_id, secret), timeout=10)
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"
    assert requests.post(f"{live_server}/oauth2/token", data={}, timeout=10).status_code == 400
    # A forged token (another key, same claims) is no token here.
    from joserfc.jwk import RSAKey
    forged = jwt.encode({"alg": "RS256", "kid": "forged", "typ": "at+jwt"}, {
        "iss": app.config["IAM_ISSUER"], "aud": app.config["IAM_ISSUER"], "sub": "1", "sid": "1",
        "exp": 4102444800}, RSAKey.generate_key(2048))
    assert me(live_server, forged).status_code == 401


def test_a_rotated_secret_replaces_the_old_one(app, live_server, service, admin):
    client_id, secret, _ = service
    with app.app_context():
        from iam.models import OAuthClient
        client_row_id = db.session.scalars(select(OAuthClient.id)).one()
    new = admin.post(f"/oauth_clients/{client_row_id}/rotate_secret").get_json()["meta"]["client_secret"]
    assert requests.post(f"{live_server}/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(client_id, secret), timeout=10).status_code == 401
    assert fetch(live_server, client_id, new)["access_token"]


def test_key_rotation_keeps_tokens_in_flight_valid(app, live_server, service):
    client_id, secret, _ = service
    before = fetch(live_server, client_id, secret)["access_token"]
    done = app.test_cli_runner().invoke(args=["iam", "rotate-signing-key"])
    assert done.exit_code == 0 and "new RS256 signing key" in done.output and "new ES256 signing key" in done.output
    jwks = requests.get(f"{live_server}/oauth2/jwks", timeout=10).json()
    assert len(jwks["keys"]) == 3  # the old RS256 key, the new RS256 and ES256 keys
    after = fetch(live_server, client_id, secret)["access_token"]
    assert jwt.decode(after, KeySet.import_key_set(jwks)).header["kid"] != \
        jwt.decode(before, KeySet.import_key_set(jwks)).header["kid"]
    assert me(live_server, before).status_code == 200 and me(live_server, after).status_code == 200
    # Once every token the old key signed has expired, it leaves the JWKS, and its tokens stop.
    with app.app_context():
        from iam.models import utcnow
        from datetime import timedelta
        db.session.execute(update(SigningKey).where(SigningKey.retired_at.isnot(None))
                           .values(published_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert len(requests.get(f"{live_server}/oauth2/jwks", timeout=10).json()["keys"]) == 2
    assert me(live_server, before).status_code == 401


def test_private_keys_are_sealed_and_resealed(app, live_server, service):
    client_id, secret, _ = service
    fetch(live_server, client_id, secret)
    with app.app_context():
        row = db.session.scalars(select(SigningKey)).one()
        assert '"d"' not in row.private_sealed and "d" not in row.public_jwk
    old_key = app.config["IAM_SECRET_KEY"]
    app.config.update(IAM_ENCRYPTION_KEY="the-next-encryption-key-0123456789abcdef", IAM_ENCRYPTION_OLD_KEYS=[old_key])
    try:
        done = app.test_cli_runner().invoke(args=["iam", "reseal-secrets"])
        assert done.exit_code == 0 and "resealed 1 secret(s)" in done.output, done.output
    finally:
        app.config.update(IAM_ENCRYPTION_KEY="", IAM_ENCRYPTION_OLD_KEYS=[])


def introspect(live_server, token, auth, **extra):
    return requests.post(f"{live_server}/oauth2/introspect", data={"token": token, **extra}, auth=auth, timeout=10)


def test_introspection_and_revocation(app, live_server, service, admin, factory):
    client_id, secret, robot = service
    token = fetch(live_server, client_id, secret)["access_token"]
    answer = introspect(live_server, token, (client_id, secret))
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True and body["client_id"] == client_id and body["sub"] == str(robot.id)
    assert body["iss"] == app.config["IAM_ISSUER"] and body["exp"] > body["iat"]
    # Nothing about tokens it does not know, or to a client of another organization.
    assert introspect(live_server, "not-a-token", (client_id, secret)).json() == {"active": False}
    other_org = factory.organization(slug="other")
    stranger = assert_jsonapi(admin.post("/oauth_clients", {"data": {"type": "oauth_clients", "attributes": {
        "name": "Elsewhere", "organization_id": other_org.id, "redirect_uris": ["https://x.example/cb"]}}}), 201)
    stranger_auth = (stranger["data"]["attributes"]["client_id"], stranger["meta"]["client_secret"])
    assert introspect(live_server, token, stranger_auth).json() == {"active": False}
    # Only with the client's credentials.
    assert introspect(live_server, token, (client_id, "wrong")).status_code == 401
    assert requests.post(f"{live_server}/oauth2/introspect", data={"token": token}, timeout=10).status_code == 401
    # The other organization's client cannot revoke it; its own client can, and it stops everywhere.
    assert requests.post(f"{live_server}/oauth2/revoke", data={"token": token}, auth=stranger_auth,
                         timeout=10).status_code == 400
    assert me(live_server, token).status_code == 200
    revoked = requests.post(f"{live_server}/oauth2/revoke", data={"token": token, "token_type_hint": "access_token"},
                            auth=(client_id, secret), timeout=10)
    assert revoked.status_code == 200
    assert me(live_server, token).status_code == 401
    assert introspect(live_server, token, (client_id, secret)).json() == {"active": False}
    # Revoking what is unknown is a 200 too (RFC 7009 section 2.2).
    assert requests.post(f"{live_server}/oauth2/revoke", data={"token": "unknown"}, auth=(client_id, secret),
                         timeout=10).status_code == 200
