"""The grants that sign a person in to an application (contract section 10), as Authlib's
grant classes with this server's storage:

- the authorization code: single use, CODE_TTL seconds, bound to its client, its exact
  redirect URI and its PKCE challenge (S256 only: `plain`, or a challenge without its method,
  which RFC 7636 reads as plain, is refused; public clients must send one). The code is kept
  after use: presented again, it ends the session it issued (its access and refresh tokens),
  and is audited as `token_reuse`. Claimed by one conditional UPDATE, so two parallel
  exchanges cannot both win.
- the OpenID Connect extension: the ID token (RS256, the current key's `kid`) with `nonce`,
  `auth_time`, `amr`, `at_hash`, `sid` and the claims of claims.py for the scopes granted.
- the refresh token: rotated on every use inside the application's session; a used one
  presented again ends the session (its family), as the API's own refresh does
  (auth/sessions.rotate, which also keeps an application's refresh tokens and the API's apart).

Each code exchange opens an application session (account_sessions with `oauth_client_id`, the
granted `oauth_scope`, and `parent_id`, the browser session of the sign-in pages it came from):
its tokens die with it, with the account, and with a sign-out at /oauth2/logout.
"""
import time
from datetime import timedelta

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from flask import current_app
from sqlalchemy import delete, select, update

from .. import audit
from ..auth import sessions
from ..extensions import db
from ..models import Account, AccountSession, OAuthAuthorizationCode, utcnow
from ..resources.common import digest
from . import claims as user_claims
from . import keys

CODE_TTL = 60
USED_CODES_KEPT = timedelta(days=1)  # how long a used or expired code is kept to recognise a replay
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class GrantUser:
    """The person a grant is for, as Authlib passes it around: the account, the browser session
    that signed in (at the authorization endpoint), the code or the refresh being traded, and
    the application session the tokens belong to (set when they are made)."""

    def __init__(self, account, browser_session=None, code=None, session=None, refresh_token=None):
        self.account, self.browser_session, self.code = account, browser_session, code
        self.session, self.refresh_token = session, refresh_token

    def get_user_id(self):
        return self.account.id


class StoredCode:
    """An oauth_codes row as Authlib's authorization code."""

    def __init__(self, row):
        self.row = row
        self.code_challenge, self.code_challenge_method = row.code_challenge, row.code_challenge_method

    def get_redirect_uri(self):
        return self.row.redirect_uri

    def get_scope(self):
        return self.row.scope

    def get_nonce(self):
        return self.row.nonce

    def get_auth_time(self):
        return int(self.row.auth_time.timestamp())

    def get_acr(self):
        return None

    def get_amr(self):
        return list(self.row.amr or [])


class S256Challenge(CodeChallenge):
    """PKCE with S256 only; required for public clients, accepted for all."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"  # never read: a code is stored only with its method

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge and not method:
            if grant.request.client.row.client_type == "public":
                raise InvalidRequestError("A public client must use PKCE: send code_challenge and "
                                          "code_challenge_method=S256.", redirect_uri=redirect_uri)
            return
        if challenge and not method:
            raise InvalidRequestError("Send code_challenge_method=S256 ('plain', the default without it, "
                                      "is not accepted).", redirect_uri=redirect_uri)
        if method != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is accepted.",
                                      redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


def _end_issued(row, now, reused):
    """A code or token presented again: the session it issued ends, audited."""
    session = db.session.get(AccountSession, row.issued_session_id) if row.issued_session_id else None
    if session is None:
        return
    sessions.end(session, now)
    audit.record("token_reuse", actor_id=session.account_id, resource_type="account_sessions",
                 resource_id=session.id, changes={"reused": reused, "client_id": row.client.client_id})


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code, request):
        user, now = request.user, utcnow()
        # Codes long past their time can no longer be replayed usefully: each new code sweeps them.
        db.session.execute(delete(OAuthAuthorizationCode).where(OAuthAuthorizationCode.expires_at < now - USED_CODES_KEPT)
                           .execution_options(synchronize_session=False))
        data = request.payload.data
        browser = user.browser_session
        db.session.add(OAuthAuthorizationCode(
            code_digest=digest(code), client_id=request.client.row.id, account_id=user.account.id,
            browser_session_id=browser.id, redirect_uri=request.payload.redirect_uri, scope=request.scope or "",
            nonce=data.get("nonce"), code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"), amr=list(browser.amr or ["pwd"]),
            auth_time=browser.auth_time or browser.created_at, created_at=now,
            expires_at=now + timedelta(seconds=CODE_TTL)))
        db.session.commit()

    def query_authorization_code(self, code, client):
        if not isinstance(code, str) or len(code) > 256:
            return None
        now = utcnow()
        row = db.session.scalars(select(OAuthAuthorizationCode).where(
            OAuthAuthorizationCode.code_digest == digest(code),
            OAuthAuthorizationCode.client_id == client.row.id)).one_or_none()
        if row is None:
            return None
        claimed = db.session.execute(
            update(OAuthAuthorizationCode).where(OAuthAuthorizationCode.id == row.id,
                                                 OAuthAuthorizationCode.used_at.is_(None),
                                                 OAuthAuthorizationCode.expires_at > now)
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount
        if not claimed:
            db.session.rollback()
            row = db.session.get(OAuthAuthorizationCode, row.id)
            if row is not None and row.used_at is not None:
                _end_issued(row, now, "authorization_code")
                db.session.commit()
            return None
        return StoredCode(row)

    def delete_authorization_code(self, authorization_code):
        """Kept, used: a replay must find it (query_authorization_code)."""

    def authenticate_user(self, authorization_code):
        account = db.session.get(Account, authorization_code.row.account_id)
        if account is None or not account.is_active(utcnow()):
            return None
        return GrantUser(account, code=authorization_code)


class RefreshCredential:
    def __init__(self, session, new_refresh_token):
        self.session, self.new_refresh_token = session, new_refresh_token

    def check_client(self, client):
        return self.session.oauth_client_id == client.row.id

    def get_scope(self):
        return self.session.oauth_scope or ""


class RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        if not isinstance(refresh_token, str) or len(refresh_token) > 256:
            return None
        try:
            session, new = sessions.rotate(refresh_token, utcnow(), client_row_id=self.request.client.row.id)
        except sessions.RefreshRefused:
            return None
        return RefreshCredential(session, new)

    def authenticate_user(self, credential):
        return GrantUser(credential.session.account, session=credential.session,
                         refresh_token=credential.new_refresh_token)

    def revoke_old_credential(self, credential):
        """Used already: sessions.rotate claimed it."""


def open_application_session(user, client_row, scope, offline, now):
    """The application session a code's exchange opens (the caller commits)."""
    code = user.code.row
    config = current_app.config
    lifetime = config["IAM_REFRESH_TOKEN_TTL"] if offline else config["IAM_ACCESS_TOKEN_TTL"]
    session = sessions.open_session(user.account, now, lifetime=lifetime, amr=code.amr)
    session.auth_time, session.oauth_client_id, session.parent_id = code.auth_time, client_row.id, code.browser_session_id
    session.oauth_scope = scope
    db.session.flush()
    code.issued_session_id = session.id
    return session


class IdToken(OpenIDCode):
    """The ID token of a code exchange with scope `openid`."""

    def __init__(self):
        super().__init__(require_nonce=False)

    def exists_nonce(self, nonce, request):
        """A nonce is used once per client: a second authorization request with it is refused."""
        client = getattr(request, "client", None)
        if client is None or not isinstance(nonce, str):
            return False
        return db.session.scalar(select(OAuthAuthorizationCode.id).where(
            OAuthAuthorizationCode.client_id == client.row.id, OAuthAuthorizationCode.nonce == nonce).limit(1)) \
            is not None

    def _signing(self):
        return keys.current("RS256", utcnow())

    def resolve_client_private_key(self, client):
        return keys.private_key(self._signing())

    def get_client_algorithm(self, client):
        return "RS256"

    def get_encode_header(self, client):
        return {"alg": "RS256", "kid": self._signing().kid, "typ": "JWT"}

    def get_client_claims(self, client):
        now = int(time.time())
        client_id = client.get_client_id()
        return {"iss": current_app.config["IAM_ISSUER"], "aud": client_id, "azp": client_id, "iat": now,
                "exp": now + current_app.config["IAM_ACCESS_TOKEN_TTL"]}

    def generate_user_info(self, user, scope):
        claims = user_claims.user_claims(user.account, set((scope or "").split()), user.session.id)
        claims["sid"] = str(user.session.id)
        return claims
