"""The OpenID Provider's endpoints a browser or an application calls besides the token
endpoint (contract section 10):

- `GET /oauth2/authorize`: Authlib validates the request first. A request that names no
  registered client or redirect URI gets an error page and never a redirect; any other error
  goes back to the redirect URI as OAuth error parameters (with `state`, and `iss` as on every
  authorization response, RFC 9207). Without a
  browser session (or with `prompt=login`, or past `max_age`) the browser goes to the sign-in
  pages and comes back (to the request without its `prompt` and `max_age`, which the fresh
  sign-in answered); `prompt=none` answers `login_required` / `consent_required` instead.
  A client of an organization signs in that organization's accounts only (`access_denied`).
  A client with `require_consent` shows the consent page until the person allowed the scopes
  asked for (`POST /oauth2/authorize`, CSRF-protected); then the code goes to the client.
- `GET|POST /oauth2/userinfo`: the claims (claims.py) for an access token of this server with
  scope `openid`, while its application session lives (RFC 6750 errors).
- `GET|POST /oauth2/logout`: RP-initiated logout. With a valid `id_token_hint` of this issuer,
  the browser session and the application sessions opened from it end at once, and the browser
  goes to `post_logout_redirect_uri` when it is registered for the client (with `state`);
  without one, a confirmation page asks first (a form with a CSRF token), and no redirect
  follows. Unregistered URIs are never redirected to.
- `GET /.well-known/openid-configuration`: the discovery document, built from the same
  constants the endpoints use.
"""
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from authlib.common.urls import add_params_to_uri
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app, jsonify, redirect, request, url_for
from flask_wtf import FlaskForm
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from .. import audit
from ..auth import sessions, tokens
from ..extensions import db
from ..models import AccountSession, CLIENT_SCOPES, OAuthClient, OAuthConsent, utcnow
from ..web import browser, pages
from ..web.signin import csrf_failed, expired_form
from . import claims as user_claims
from . import grants, keys

SCOPE_DESCRIPTIONS = {
    "openid": "Know who you are (your account id)",
    "profile": "See your name and picture",
    "email": "See your email address",
    "roles": "See the names of your roles",
    "offline_access": "Stay signed in when you are away (refresh tokens)",
}


class ConsentForm(FlaskForm):
    pass


class LogoutForm(FlaskForm):
    pass


def _client_row(client_id):
    if not isinstance(client_id, str) or len(client_id) > 64:
        return None
    return db.session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).one_or_none()


def redirect_origin(next_url):
    """For pages.FORM_TARGETS: the origin of the registered redirect URI an authorization
    request (a `next` of the sign-in pages) names, or None."""
    query = dict(parse_qsl(urlsplit(next_url).query))
    row = _client_row(query.get("client_id"))
    uri = query.get("redirect_uri")
    if row is None or uri not in (row.redirect_uris or []):
        return None
    return pages.origin_of(uri)


def _error_page(error):
    return pages.error_page("This sign-in link is not valid",
                            "The application that sent you here made a request this server cannot accept. "
                            "Go back to the application and try again.", 400,
                            detail=f"{error.error}: {error.description}" if error.description else error.error)


def _error_response(server, error, state):
    """Back to the client when the redirect URI was validated (with `iss`, RFC 9207), else the
    error page."""
    if not getattr(error, "redirect_uri", None):
        return _error_page(error)
    error.state = state
    response = server.handle_error_response(None, error)
    location = response.headers.get("Location")
    if location and "iss=" not in urlsplit(location).query:
        response.headers["Location"] = add_params_to_uri(location, [("iss", current_app.config["IAM_ISSUER"])])
    return response


# What a fresh sign-in has answered: the authorization request it returns to goes without them
# (else `max_age=0` would send the browser to the sign-in page for ever).
FRESH_SIGN_IN_ANSWERS = ("prompt", "max_age")


def _after_sign_in(url):
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in FRESH_SIGN_IN_ANSWERS]
    return f"{parts.path}?{urlencode(query)}"


def _needs_sign_in(browser_session, prompt, max_age, now):
    if browser_session is None or "login" in prompt:
        return True
    if max_age is not None:
        auth_time = browser_session.auth_time or browser_session.created_at
        return now - auth_time > timedelta(seconds=max_age)
    return False


def _max_age(payload):
    value = payload.data.get("max_age")
    if value is None:
        return None
    if not str(value).isdigit() or len(str(value)) > 9:
        raise ValueError("max_age must be a number of seconds")
    return int(value)


def _consented(row, account_id, scopes):
    consent = db.session.scalars(select(OAuthConsent).where(OAuthConsent.account_id == account_id,
                                                            OAuthConsent.client_id == row.id)).one_or_none()
    return consent is not None and set(scopes) <= set(consent.scopes or [])


def _record_consent(row, account, scopes, now):
    consent = db.session.scalars(select(OAuthConsent).where(OAuthConsent.account_id == account.id,
                                                            OAuthConsent.client_id == row.id)).one_or_none()
    if consent is None:
        db.session.add(OAuthConsent(account_id=account.id, client_id=row.id, scopes=sorted(scopes)))
    else:
        consent.scopes = sorted(set(consent.scopes or []) | set(scopes))
    audit.record("consent_given", actor_id=account.id, resource_type="oauth_clients", resource_id=row.id,
                 organization_id=account.organization_id, changes={"scopes": sorted(scopes)})


def authorize(server):
    now = utcnow()
    state = request.args.get("state")
    signed_in = browser.current(now)
    try:
        # prompt=none without a signed-in browser: login_required, after every other check.
        grant = server.get_consent_grant(end_user=signed_in.account if signed_in is not None else None)
    except OAuth2Error as error:
        db.session.rollback()
        return _error_response(server, error, state)
    payload = grant.request.payload
    prompt = set((payload.data.get("prompt") or "").split())
    row = grant.request.client.row
    try:
        max_age = _max_age(payload)
    except ValueError as invalid:
        return _error_response(server, InvalidRequestError(str(invalid), redirect_uri=payload.redirect_uri), state)
    if request.method == "POST" and not ConsentForm().validate_on_submit():
        return expired_form()  # a POST here is the consent page's form, and carries its CSRF token
    if _needs_sign_in(signed_in, prompt, max_age, now):
        if "none" in prompt:
            return _error_response(server, LoginRequiredError(redirect_uri=payload.redirect_uri), state)
        next_url = _after_sign_in(request.full_path)
        db.session.commit()
        fresh = {"reauth": "1"} if signed_in is not None else {}  # signed in, but not recently enough
        return redirect(url_for("web.signin", next=next_url, **fresh), 303)
    account = signed_in.account
    if row.organization_id is not None and account.organization_id != row.organization_id:
        db.session.commit()
        return _error_response(server, AccessDeniedError(
            "This account cannot sign in to this application.", redirect_uri=payload.redirect_uri), state)
    scopes = (grant.request.scope or "").split()
    if row.require_consent and ("consent" in prompt or not _consented(row, account.id, scopes)):
        if "none" in prompt:
            return _error_response(server, ConsentRequiredError(redirect_uri=payload.redirect_uri), state)
        if request.method == "POST":
            decision = request.form.get("decision")
            if decision != "allow":
                audit.record("consent_denied", actor_id=account.id, resource_type="oauth_clients",
                             resource_id=row.id, organization_id=account.organization_id)
                db.session.commit()
                return server.create_authorization_response(grant=grant, grant_user=None)
            _record_consent(row, account, scopes, now)
        else:
            db.session.commit()
            return pages.render("consent.html", form_targets=[pages.origin_of(payload.redirect_uri)],
                                form=ConsentForm(), client_name=row.name, email=account.email,
                                scopes=[SCOPE_DESCRIPTIONS.get(s, s) for s in scopes], action=request.full_path)
    return server.create_authorization_response(grant=grant, grant_user=grants.GrantUser(account, signed_in))


def _bearer_error(status, error, description):
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["WWW-Authenticate"] = f'Bearer realm="iam", error="{error}", error_description="{description}"'
    return response


def _application_token(raw):
    """(claims, session) of a live application access token of this server, or None."""
    from .server import decode_access_token  # server imports this module
    try:
        claims, sid = decode_access_token(raw)
        jwt.JWTClaimsRegistry(exp={"essential": True}, sub={"essential": True}).validate(claims)
    except (tokens.InvalidToken, JoseError):
        return None
    if claims.get("aud") != claims.get("client_id"):
        return None  # a client-credentials token (its audience is this API): no person's
    session = db.session.get(AccountSession, sid)
    now = utcnow()
    if session is None or session.oauth_client_id is None or str(session.account_id) != str(claims["sub"]) \
            or not session.is_active(now) or not session.account.is_active(now):
        return None
    return claims, session


def userinfo():
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer":
        raw = request.form.get("access_token", "") if request.method == "POST" else ""
    found = _application_token(raw.strip())
    if found is None:
        return _bearer_error(401, "invalid_token", "The access token is invalid, expired or revoked.")
    token_claims, session = found
    scopes = set(str(token_claims.get("scope", "")).split())
    if "openid" not in scopes:
        return _bearer_error(403, "insufficient_scope", "The access token was not granted the openid scope.")
    answer = user_claims.user_claims(session.account, scopes, session.id)
    db.session.commit()
    return jsonify(answer)


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self):
        return keys.jwks(utcnow())

    def get_algorithms(self):
        return ["RS256", "ES256"]

    def _validate_id_token_hint(self, id_token_hint):
        if not isinstance(id_token_hint, str) or len(id_token_hint) > 8192:
            raise InvalidRequestError("id_token_hint is not an ID token of this server.")
        try:
            decoded = jwt.decode(id_token_hint, KeySet.import_key_set(self.get_server_jwks()),
                                 algorithms=self.get_algorithms())
        except (JoseError, ValueError, TypeError, LookupError):
            raise InvalidRequestError("id_token_hint is not an ID token of this server.") from None
        claims = dict(decoded.claims)
        if claims.get("iss") != current_app.config["IAM_ISSUER"] or decoded.header.get("typ") == "at+jwt":
            raise InvalidRequestError("id_token_hint is not an ID token of this server.")
        return claims

    def end_session(self, end_session_request):
        """Done by the view (it owns the response that clears the cookie)."""


def logout(server):
    now = utcnow()
    try:
        validated = server.validate_endpoint_request(EndSession.ENDPOINT_NAME)
    except InvalidRequestError as error:
        db.session.rollback()
        return pages.error_page("This sign-out link is not valid", error.description or "Invalid request.", 400)
    signed_in = browser.current(now)
    hint = validated.id_token_claims
    back = validated.redirect_uri
    client_name = validated.client.row.name if validated.client is not None else None
    if hint is None and request.method == "GET":
        db.session.commit()
        return pages.render("logout_confirm.html", form=LogoutForm(), client_name=client_name,
                            action=request.full_path)
    if hint is None:
        form = LogoutForm()
        if not form.validate_on_submit() and csrf_failed(form):
            return expired_form()
    if hint is not None:
        # The application session the ID token names ends too, whichever browser this is.
        sid = str(hint.get("sid", ""))
        named = db.session.get(AccountSession, int(sid)) if sid.isdigit() and int(sid) < 2 ** 31 else None
        if named is not None and str(named.account_id) == str(hint.get("sub")) and named.oauth_client_id is not None:
            sessions.end(named, now)
        if signed_in is not None and str(signed_in.account_id) != str(hint.get("sub")):
            signed_in = None  # another person is signed in in this browser: not theirs to end
    response = redirect(back, 303) if back else pages.render("signed_out.html")
    if back:
        response.headers["Content-Security-Policy"] = pages.policy([pages.origin_of(back)])
    browser.end(signed_in, response, now)
    db.session.commit()
    return response


def discovery():
    issuer = current_app.config["IAM_ISSUER"]
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}/oauth2/jwks",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "scopes_supported": list(CLIENT_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": grants.CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": grants.CLIENT_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(user_claims.CLAIMS_SUPPORTED),
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


JSON_ENDPOINTS = ("oauth.oauth_jwks", "oauth.oauth_token", "oauth.oauth_introspect", "oauth.oauth_revoke",
                  "oauth.oauth_userinfo", "oauth.openid_configuration")


def register(blueprint, server):
    server.register_endpoint(EndSession)
    pages.answer_errors_in_kind(blueprint, JSON_ENDPOINTS)
    if redirect_origin not in pages.FORM_TARGETS:
        pages.FORM_TARGETS.append(redirect_origin)

    @blueprint.route("/oauth2/authorize", methods=["GET", "POST"])
    def oauth_authorize():
        return authorize(server)

    @blueprint.route("/oauth2/userinfo", methods=["GET", "POST"])
    def oauth_userinfo():
        return userinfo()

    @blueprint.route("/oauth2/logout", methods=["GET", "POST"])
    def oauth_logout():
        return logout(server)

    @blueprint.get("/.well-known/openid-configuration")
    def openid_configuration():
        return discovery()

