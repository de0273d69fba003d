"""Authlib's authorization server at the server's root: `GET /oauth2/jwks` and `POST
/oauth2/token` (the `client_credentials` grant so far; contract section 10).

A client authenticates as its `token_endpoint_auth_method` says (its secret compared by
digest, in constant time); a public client never gets client credentials. The token is a JWT
(RFC 9068 `at+jwt`) signed with the current RS256 key: `iss` IAM_ISSUER, `sub` the client's
service account, `client_id`, `scope`, and `sid`, a session of the service account opened for
the token's lifetime, so that this API takes the token like its own (iam/auth/tokens.py asks
`verify_access_token` below) and disabling the account or ending the session stops it at once.

Authlib logs issued tokens at DEBUG: its logger is kept at INFO.
"""
import hmac
import logging
import time
import uuid
from datetime import datetime, timezone

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Blueprint, current_app, jsonify
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from .. import audit
from ..auth import sessions, tokens
from ..extensions import db
from ..models import OAuthClient, utcnow
from ..resources.common import digest
from . import keys

logging.getLogger("authlib").setLevel(logging.INFO)

ACCESS_TOKEN_TYPE = "at+jwt"


class Client(ClientMixin):
    """An oauth_clients row as Authlib's client."""

    def __init__(self, row):
        self.row = row

    def get_client_id(self):
        return self.row.client_id

    def get_default_redirect_uri(self):
        return (self.row.redirect_uris or [None])[0]

    def get_allowed_scope(self, scope):
        allowed = set(self.row.scopes or [])
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in (self.row.redirect_uris or [])

    def check_client_secret(self, client_secret):
        return self.row.secret_digest is not None and hmac.compare_digest(digest(client_secret),
                                                                           self.row.secret_digest)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.row.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in (self.row.grant_types or [])

    def check_grant_type(self, grant_type):
        if grant_type == "client_credentials" and self.row.client_type != "confidential":
            return False
        return grant_type in (self.row.grant_types or [])


def _query_client(client_id):
    row = db.session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).one_or_none() \
        if isinstance(client_id, str) and len(client_id) <= 64 else None
    return Client(row) if row is not None else None


class ServiceAccountGrant(ClientCredentialsGrant):
    """Client credentials, for a client whose service account may sign in now."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self):
        super().validate_token_request()
        account = self.client.row.service_account
        if account is None or not account.is_active(utcnow()):
            from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
            raise UnauthorizedClientError(description="The client has no service account that may sign in.")


def _token(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
    """The JWT access token of a client-credentials grant, and its session."""
    now = utcnow()
    row = client.row
    lifetime = current_app.config["IAM_ACCESS_TOKEN_TTL"]
    account = row.service_account
    session = sessions.open_session(account, now, lifetime=lifetime, amr=["client_credentials"])
    signing = keys.current("RS256", now)
    issued = int(time.time())
    claims = {"iss": current_app.config["IAM_ISSUER"], "sub": str(account.id), "aud": current_app.config["IAM_ISSUER"],
              "client_id": row.client_id, "scope": scope or "", "iat": issued, "exp": issued + lifetime,
              "jti": uuid.uuid4().hex, "sid": str(session.id)}
    token = jwt.encode({"alg": "RS256", "kid": signing.kid, "typ": ACCESS_TOKEN_TYPE}, claims,
                       keys.private_key(signing), algorithms=["RS256"])
    audit.record("token_issued", actor_id=account.id, resource_type="oauth_clients", resource_id=row.id,
                 organization_id=row.organization_id, changes={"grant_type": grant_type, "scope": scope or ""})
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope or ""}


def _save_token(token, request):
    db.session.commit()


def verify_access_token(token):
    """The claims of an application access token this server signed (for this API's own
    authentication), or tokens.InvalidToken."""
    try:
        decoded = jwt.decode(token, lambda obj: _key_for(obj.headers()), algorithms=["RS256", "ES256"])
    except (JoseError, ValueError, TypeError, LookupError) as error:
        raise tokens.InvalidToken(str(error)) from None
    header, claims = decoded.header, decoded.claims
    if header.get("typ") != ACCESS_TOKEN_TYPE or claims.get("iss") != current_app.config["IAM_ISSUER"]:
        raise tokens.InvalidToken("not an access token of this issuer")
    registry = jwt.JWTClaimsRegistry(exp={"essential": True}, sub={"essential": True}, sid={"essential": True},
                                     aud={"essential": True, "value": current_app.config["IAM_ISSUER"]})
    try:
        registry.validate(claims)
    except JoseError as error:
        raise tokens.InvalidToken(str(error)) from None
    for claim in ("sub", "sid"):
        value = claims.get(claim)
        if not isinstance(value, str) or not value.isdigit() or int(value) >= 2 ** 31:
            raise tokens.InvalidToken(f"bad {claim}")
    return claims


def _key_for(header):
    found = keys.verification_key(header.get("kid"), datetime.now(timezone.utc)) \
        if isinstance(header.get("kid"), str) else None
    if found is None or found[0] != header.get("alg"):
        raise LookupError("unknown signing key")
    return found[1]


def init_app(app):
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(ServiceAccountGrant)
    server.register_token_generator("default", _token)
    app.extensions["iam_oauth_server"] = server
    if verify_access_token not in tokens.EXTERNAL_VERIFIERS:
        tokens.EXTERNAL_VERIFIERS.append(verify_access_token)
    blueprint = Blueprint("oauth", __name__)

    @blueprint.get("/oauth2/jwks")
    def oauth_jwks():
        response = jsonify(keys.jwks(utcnow()))
        db.session.commit()  # keys made at first use
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @blueprint.post("/oauth2/token")
    def oauth_token():
        return server.create_token_response()

    app.register_blueprint(blueprint)
