"""A small but real OpenID provider for the single sign-on tests, which can be told to misbehave.

oidc-provider-mock (conftest.py) only issues correct ID tokens. The forger issues whatever a
test's `Recipe` says: claims overridden or deleted, another header, a key it does not publish,
an HMAC under the client secret, `alg: none`, a tampered token, or a token endpoint answering
an error, something that is not JSON or more than a megabyte. Everything else it does as a
provider must, so that a refusal is the ID token's fault and nothing else's:

- `/.well-known/openid-configuration` names issuer `http://localhost:PORT` and the endpoints
  below (`discovery` overrides any member of it);
- `/jwks` publishes the public part of `published` and counts its fetches (`jwks_fetches`);
- `/authorize` records client_id, redirect_uri, state, nonce and the S256 code challenge under a
  new random code and redirects straight back with the code and the state;
- `/token` takes a code once, with its redirect_uri, the client secret (client_secret_basic or
  client_secret_post) and the PKCE verifier matching the challenge, and answers RFC 6749 error
  JSON otherwise (400 invalid_grant, 401 invalid_client);
- `/userinfo` answers the ID token's claims about the user (the recipe's `userinfo` over them)
  for an access token it issued, and counts its calls (`userinfo_calls`).

Run it with `Forger().serve()` (a context manager: a threaded werkzeug server on localhost);
`reset()` between tests.
"""
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import requests
import werkzeug.serving
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import func, select

from iam.extensions import db
from iam.models import Account, AccountIdentity, AccountSession, AuditEvent, SsoCode
from tests.helpers import error_of
from tests.sso.flows import CALLBACK, begin

CLIENT_SECRET = "iam-test-secret"
ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
DROP = object()  # a Recipe's claims or header value that deletes the member


def rsa_key(kid):
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier):
    return b64url(hashlib.sha256(verifier.encode()).digest())


@dataclass
class Recipe:
    """How the next ID token (and token answer) is made."""

    claims: dict = field(default_factory=dict)  # merged over the default claims (DROP deletes one; a
    #                                             callable is called with the time the token is made)
    header: dict = field(default_factory=dict)  # merged over {"alg", "kid"} (DROP deletes one)
    alg: str = "RS256"  # "none": unsigned; "HS...": an HMAC under the client secret; else signed by `key`
    key: object = None  # a joserfc key to sign with instead of the forger's signing key
    tamper: Callable[[str], str] | None = None  # applied to the finished token
    answer: tuple | None = None  # (status, body, content type) the token endpoint answers instead of a token
    padding: int = 0  # characters of filler added to the token answer
    userinfo: dict = field(default_factory=dict)  # merged over the ID token's claims about the user at /userinfo
    userinfo_status: int = 200  # what /userinfo answers (not 200: an error)


def _merged(base, overrides):
    merged = {**base, **overrides}
    return {name: value for name, value in merged.items() if value is not DROP}


class Forger:
    def __init__(self):
        self.default_key = rsa_key("forger-1")
        self.stranger = rsa_key("forger-1")  # same kid as the published key, never published
        self.server = None
        self._lock = threading.Lock()
        self.app = self._make_app()
        self.reset()

    def reset(self):
        with self._lock:
            self.recipe = Recipe()
            self.published = [self.default_key]
            self.signing_key = self.default_key
            self.discovery = {}
            self.jwks_fetches = 0
            self.grants = {}           # code -> what /authorize was asked
            self.authorizations = []   # those, in order
            self.token_requests = []   # {"auth": method, "error": None or the error answered}
            self.access_tokens = {}    # access token -> the grant it was issued for
            self.userinfo_calls = 0

    def rotate(self, kid="forger-2"):
        """Publish only a new key, and sign with it."""
        key = rsa_key(kid)
        with self._lock:
            self.published, self.signing_key = [key], key
        return key

    @property
    def issuer(self):
        return f"http://localhost:{self.server.server_port}"

    # The ID token

    def claims(self, grant, now):
        claims = {"iss": self.issuer, "sub": "ada", "aud": grant["client_id"], "exp": now + 300, "iat": now,
                  "email": "ada@acme.example", "email_verified": True, "given_name": "Ada",
                  "family_name": "Lovelace"}
        if grant["nonce"] is not None:
            claims["nonce"] = grant["nonce"]
        overrides = {name: value(now) if callable(value) else value for name, value in self.recipe.claims.items()}
        return _merged(claims, overrides)

    def id_token(self, grant):
        recipe = self.recipe
        claims = self.claims(grant, int(time.time()))
        if recipe.alg == "none":
            header = _merged({"typ": "JWT", "alg": "none"}, recipe.header)
            token = ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), ""])
        elif recipe.alg.startswith("HS"):
            header = _merged({"alg": recipe.alg}, recipe.header)
            token = jwt.encode(header, claims, OctKey.import_key(CLIENT_SECRET), algorithms=[recipe.alg])
        else:
            key = recipe.key or self.signing_key
            header = _merged({"alg": recipe.alg, "kid": key.kid}, recipe.header)
            token = jwt.encode(header, claims, key, algorithms=[recipe.alg])
        return recipe.tamper(token) if recipe.tamper else token

    # The endpoints

    def _make_app(self):
        app = Flask("forger")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify({
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "userinfo_endpoint": self.issuer + "/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ASYMMETRIC,
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                **self.discovery,
            })

        @app.get("/jwks")
        def jwks():
            with self._lock:
                self.jwks_fetches += 1
                keys = [key.as_dict(private=False) for key in self.published]
            return jsonify({"keys": keys})

        @app.get("/authorize")
        def authorize():
            args = request.args
            if args.get("response_type") != "code" or not args.get("redirect_uri") or not args.get("client_id"):
                return jsonify(error="invalid_request"), 400
            if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                return jsonify(error="invalid_request", error_description="PKCE S256 is required"), 400
            code = secrets.token_urlsafe(32)
            grant = {name: args.get(name) for name in ("client_id", "redirect_uri", "state", "nonce",
                                                        "code_challenge")}
            with self._lock:
                self.grants[code] = grant
                self.authorizations.append(grant)
            parts = urlsplit(grant["redirect_uri"])
            query = "&".join(filter(None, [parts.query, urlencode({"code": code, "state": grant["state"] or ""})]))
            return redirect(urlunsplit(parts._replace(query=query)), 302)

        @app.post("/token")
        def token():
            auth, grant, error = self._check_token_request()
            with self._lock:
                self.token_requests.append({"auth": auth, "error": error and error[0]})
            if error is not None:
                name, status = error
                headers = {"Cache-Control": "no-store", **({"WWW-Authenticate": "Basic"} if status == 401 else {})}
                return jsonify(error=name), status, headers
            if self.recipe.answer is not None:
                status, body, content_type = self.recipe.answer
                body = json.dumps(body) if isinstance(body, dict) else body
                return body, status, {"Content-Type": content_type}
            access_token = secrets.token_urlsafe(32)
            with self._lock:
                self.access_tokens[access_token] = grant
            answer = {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600,
                      "id_token": self.id_token(grant)}
            if self.recipe.padding:
                answer["padding"] = "x" * self.recipe.padding
            return jsonify(answer), 200, {"Cache-Control": "no-store"}

        @app.get("/userinfo")
        def userinfo():
            """The user's claims (those of the ID token but the token's own, and the recipe's
            `userinfo` over them), for a Bearer access token this forger issued."""
            header = request.headers.get("Authorization", "")
            with self._lock:
                self.userinfo_calls += 1
                grant = self.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
            if grant is None:
                return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": "Bearer"}
            if self.recipe.userinfo_status != 200:
                return jsonify(error="server_error"), self.recipe.userinfo_status
            claims = {name: value for name, value in self.claims(grant, int(time.time())).items()
                      if name not in ("iss", "aud", "exp", "iat", "nonce", "azp")}
            return jsonify(_merged(claims, self.recipe.userinfo))

        return app

    def _client_authentication(self):
        """(method, client_id, secret) as the client presented them; method None if not exactly one way."""
        form, header = request.form, request.headers.get("Authorization", "")
        basic = None
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None, None, None
            basic = (unquote(user), unquote(password))
        posted = form.get("client_secret")
        if basic is not None and posted is None:
            return "client_secret_basic", *basic
        if basic is None and posted is not None:
            return "client_secret_post", form.get("client_id"), posted
        return None, None, None

    def _check_token_request(self):
        """(client auth method, the grant, None) for a good request, else (method, None, (error, status))."""
        method, client_id, secret = self._client_authentication()
        form = request.form
        with self._lock:
            grant = self.grants.pop(form.get("code", ""), None)  # a code is good once, whatever happens
        if form.get("grant_type") != "authorization_code":
            return method, None, ("unsupported_grant_type", 400)
        if method is None or not hmac.compare_digest(secret.encode(), CLIENT_SECRET.encode()):
            return method, None, ("invalid_client", 401)
        if grant is None or client_id != grant["client_id"] or form.get("redirect_uri") != grant["redirect_uri"]:
            return method, None, ("invalid_grant", 400)
        verifier = form.get("code_verifier", "")
        if not hmac.compare_digest(s256(verifier).encode(), grant["code_challenge"].encode()):
            return method, None, ("invalid_grant", 400)
        return method, grant, None

    @contextmanager
    def serve(self):
        """The forger listening on localhost (a free port) in a background thread, until the end."""
        self.server = werkzeug.serving.make_server("localhost", 0, self.app, threaded=True)
        thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)


# Helpers of the tests that drive the flow against the forger.

def sign_in(client, provider_id):
    """start -> the forger's /authorize -> the callback, in one browser (the test client)."""
    answer = requests.get(begin(client, provider_id), allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == CALLBACK, answer.headers["Location"]
    return client.get(f"{back.path}?{back.query}")


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def failures():
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == "sso_failed")).all()


def assert_signed_in(app, response):
    assert response.status_code == 200, response.get_data(as_text=True)
    meta = response.get_json()["meta"]
    assert meta["token"]
    with app.app_context():
        session = db.session.get(AccountSession, int(response.get_json()["data"]["id"]))
        assert session.amr == ["sso"] and str(session.account_id) == meta["account_id"]
        assert failures() == []
    return meta


def assert_refused(app, response, reason, status=401, code="sso_failed"):
    """The refusal's answer, and nothing stored but its audit event (whose reason says `reason`)."""
    assert error_of(response, status)["code"] == code
    with app.app_context():
        assert count(AccountSession) == count(Account) == count(AccountIdentity) == count(SsoCode) == 0
        (event,) = db.session.scalars(select(AuditEvent)).all()
        assert event.action == "sso_failed"
        assert reason in event.changes["reason"], event.changes["reason"]
    return event
