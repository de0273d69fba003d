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
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Blueprint, current_app, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from .. import audit
from ..auth import sessions, tokens
from ..extensions import db
from ..models import AccountSession, OAuthClient, RefreshToken, utcnow
from ..resources.common import digest
from . import endpoints, grants, keys

logging.getLogger("authlib").setLevel(logging.INFO)

ACCESS_TOKEN_TYPE = "at+jwt"


class Client(ClientMixin):
    """An oauth_clients row as Authlib's client."""

    def __init__(self, row):
        self.row = row

    def get_client_id(self):
        return self.row.client_id

    def get_default_redirect_uri(self):
        return None  # redirect_uri is always sent, and matched exactly

    @property
    def client_metadata(self):
        return {"post_logout_redirect_uris": list(self.row.post_logout_redirect_uris or [])}

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


def _signed(account_id, audience, client_id, scope, session, lifetime, now):
    signing = keys.current("RS256", now)
    issued = int(time.time())
    claims = {"iss": current_app.config["IAM_ISSUER"], "sub": str(account_id), "aud": audience,
              "client_id": client_id, "scope": scope or "", "iat": issued, "exp": issued + lifetime,
              "jti": uuid.uuid4().hex, "sid": str(session.id)}
    return jwt.encode({"alg": "RS256", "kid": signing.kid, "typ": ACCESS_TOKEN_TYPE}, claims,
                      keys.private_key(signing), algorithms=["RS256"])


def _token(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
    """The tokens of a grant, and the session they belong to.

    client_credentials: a session of the service account for the token's lifetime; the token's
    audience is this server (it acts on this API). authorization_code: a new application
    session (grants.open_application_session); refresh_token: the same one, with the refresh
    token sessions.rotate made. Their access token's audience is the client: this API refuses
    it (verify_access_token), /oauth2/userinfo takes it."""
    now = utcnow()
    row = client.row
    lifetime = current_app.config["IAM_ACCESS_TOKEN_TTL"]
    scope = scope or ""
    refresh = None
    if grant_type == "client_credentials":
        account = row.service_account
        session = sessions.open_session(account, now, lifetime=lifetime, amr=["client_credentials"])
        session.oauth_client_id = row.id  # deleting the client ends its tokens
        audience = current_app.config["IAM_ISSUER"]
    else:
        account = user.account
        if grant_type == "authorization_code":
            offline = include_refresh_token and "offline_access" in scope.split()
            session = grants.open_application_session(user, row, scope, offline, now)
            refresh = sessions.new_refresh_token(session) if offline else None
            user.session = session
        else:
            session, refresh = user.session, user.refresh_token
        audience = row.client_id
        lifetime = max(1, min(lifetime, int((session.expires_at - now).total_seconds())))
    token = _signed(account.id, audience, row.client_id, scope, session, lifetime, now)
    audit.record("token_issued", actor_id=account.id, resource_type="oauth_clients", resource_id=row.id,
                 organization_id=row.organization_id, changes={"grant_type": grant_type, "scope": scope})
    answer = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
    if refresh is not None:
        answer["refresh_token"] = refresh
    return answer


class _Issuer(IssuerParameter):
    """RFC 9207: `iss` in every authorization response, so a client can tell which server answered."""

    def get_issuer(self):
        return current_app.config["IAM_ISSUER"]


def _save_token(token, request):
    db.session.commit()


def decode_access_token(token):
    """(claims, session id) of an access token this server signed, whatever its expiry, audience
    or session; InvalidToken for anything else (a signature, key, type or issuer not ours, no
    numeric `sid`). The one decoder of the API's, userinfo's, introspection's and revocation's."""
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise tokens.InvalidToken("no token")
    try:
        decoded = jwt.decode(token, lambda obj: _key_for(obj.headers()), algorithms=["RS256", "ES256"])
    except (JoseError, ValueError, TypeError, LookupError) as error:
        raise tokens.InvalidToken(str(error)) from None
    claims, sid = decoded.claims, str(decoded.claims.get("sid", ""))
    if decoded.header.get("typ") != ACCESS_TOKEN_TYPE or claims.get("iss") != current_app.config["IAM_ISSUER"] \
            or not sid.isdigit() or int(sid) >= 2 ** 31 or not isinstance(claims.get("exp"), int):
        raise tokens.InvalidToken("not an access token of this issuer")
    return claims, int(sid)


def verify_access_token(token):
    """The claims of an application access token this server signed (for this API's own
    authentication), or tokens.InvalidToken."""
    claims, _ = decode_access_token(token)
    registry = jwt.JWTClaimsRegistry(exp={"essential": True}, sub={"essential": True}, sid={"essential": True},
                                     aud={"essential": True, "value": current_app.config["IAM_ISSUER"]})
    try:
        registry.validate(claims)
    except JoseError as error:
        raise tokens.InvalidToken(str(error)) from None
    tokens.check_ids(claims)
    return claims


def _key_for(header):
    found = keys.verification_key(header.get("kid"), datetime.now(timezone.utc)) \
        if isinstance(header.get("kid"), str) else None
    if found is None or found[0] != header.get("alg"):
        raise LookupError("unknown signing key")
    return found[1]


class IssuedToken:
    """An access token this server signed, as Authlib's endpoints see it: its claims and its session."""

    def __init__(self, claims, session):
        self.claims, self.session = claims, session

    def is_expired(self):
        return self.claims["exp"] <= time.time()

    def is_revoked(self):
        session = self.session
        return session is None or not session.is_active(utcnow()) or not session.account.is_active(utcnow())

    def check_client(self, client):
        return self.claims.get("client_id") == client.get_client_id()


class IssuedRefreshToken:
    """A refresh token of an application session, as Authlib's endpoints see it."""

    def __init__(self, row):
        self.row, self.session = row, row.session

    def is_expired(self):
        return self.session.expires_at <= utcnow()

    def is_revoked(self):
        return self.row.used_at is not None or not self.session.is_active(utcnow()) \
            or not self.session.account.is_active(utcnow())

    def check_client(self, client):
        return self.session.oauth_client_id == client.row.id

    @property
    def claims(self):
        client = db.session.get(OAuthClient, self.session.oauth_client_id)
        return {"client_id": client.client_id if client else None, "sub": str(self.session.account_id),
                "scope": self.session.oauth_scope or "", "exp": int(self.session.expires_at.timestamp()),
                "iat": int(self.session.created_at.timestamp()), "iss": current_app.config["IAM_ISSUER"],
                "token_type": "refresh_token"}


def _query_refresh_token(token_string):
    row = db.session.scalars(select(RefreshToken).where(RefreshToken.token_digest == digest(token_string))
                             ).one_or_none() if len(token_string) <= 256 else None
    if row is None or row.session.oauth_client_id is None:
        return None  # the API's own refresh tokens are not the applications' business
    return IssuedRefreshToken(row)


def _query_token(token_string, token_type_hint):
    """The token if this server issued it to an application (expired or not), else None: an
    access token (a JWT it signed) or an application's refresh token, whatever the hint says."""
    if not isinstance(token_string, str) or len(token_string) > 8192:
        return None
    if token_string.count(".") != 2:
        return _query_refresh_token(token_string)
    try:
        claims, sid = decode_access_token(token_string)
    except tokens.InvalidToken:
        return None
    return IssuedToken(claims, db.session.get(AccountSession, sid))


class Introspection(IntrospectionEndpoint):
    """RFC 7662 for confidential clients: a client learns about the tokens issued to it or to
    another client of its organization (a resource server checking its callers), nothing else."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        if client.row.client_type != "confidential":
            return False
        if token.check_client(client):
            return True
        issued_to = _query_client(token.claims.get("client_id"))
        return issued_to is not None and issued_to.row.organization_id is not None \
            and issued_to.row.organization_id == client.row.organization_id

    def introspect_token(self, token):
        claims = token.claims
        answer = {"active": True, "client_id": claims.get("client_id"), "sub": claims.get("sub"),
                  "scope": claims.get("scope", ""), "token_type": claims.get("token_type", "Bearer"),
                  "exp": claims["exp"], "iat": claims.get("iat"), "iss": claims["iss"]}
        if claims.get("aud") is not None:
            answer["aud"] = claims["aud"]
        return answer


class Revocation(RevocationEndpoint):
    """RFC 7009: the client a token was issued to revokes it; its session ends (so revoking an
    access token ends its refresh token too, and the other way round)."""

    CLIENT_AUTH_METHODS = grants.CLIENT_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        if token.session is not None:
            sessions.end(token.session, utcnow())
            audit.record("token_revoked", actor_id=token.session.account_id, resource_type="account_sessions",
                         resource_id=token.session.id, changes={"client_id": token.claims.get("client_id")})
        db.session.commit()


# The endpoints where a client authenticates (HTTP Basic, or client_id and secret in the body).
CLIENT_AUTHENTICATED = frozenset({"oauth.oauth_token", "oauth.oauth_introspect", "oauth.oauth_revoke"})


def init_app(app):
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(ServiceAccountGrant)
    server.register_grant(grants.CodeGrant, [grants.S256Challenge(required=True), grants.IdToken()])
    server.register_grant(grants.RefreshGrant)
    server.register_extension(_Issuer())
    server.register_token_generator("default", _token)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    app.extensions["iam_oauth_server"] = server
    if verify_access_token not in tokens.EXTERNAL_VERIFIERS:
        tokens.EXTERNAL_VERIFIERS.append(verify_access_token)
    blueprint = Blueprint("oauth", __name__)

    @blueprint.get("/oauth2/jwks")
    def oauth_jwks():
        now = utcnow()
        keys.current("RS256", now)  # made at first use: a relying party may ask before any token exists
        response = jsonify(keys.jwks(now))
        db.session.commit()
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @blueprint.before_request
    def refuse_a_malformed_authorization():
        """An Authorization header of a scheme alone ("Bearer ", "Basic"): Authlib's parsing of
        client credentials fails on it with an exception; it is the client's mistake."""
        header = request.headers.get("Authorization")
        if request.endpoint in CLIENT_AUTHENTICATED and header is not None and len(header.split(None, 1)) < 2:
            response = jsonify({"error": "invalid_client", "error_description": "The Authorization header is malformed."})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Basic realm="iam"'
            return response
        return None

    @blueprint.post("/oauth2/token")
    def oauth_token():
        return server.create_token_response()

    @blueprint.post("/oauth2/introspect")
    def oauth_introspect():
        return server.create_endpoint_response(Introspection.ENDPOINT_NAME)

    @blueprint.post("/oauth2/revoke")
    def oauth_revoke():
        return server.create_endpoint_response(Revocation.ENDPOINT_NAME)

    endpoints.register(blueprint, server)
    app.register_blueprint(blueprint)
