"""The sign-in through an identity provider: its start (contract section 8, step 1).

`GET /auth/sso/start?identity_provider_id=..&login_hint=..&return_to=..` sends the browser to
the provider's authorization endpoint: the authorization code flow (OpenID Connect Core 1.0
section 3.1) with PKCE (RFC 7636, S256 only), a `state` and a `nonce` of 256 random bits each.
Nothing of them is trusted when they come back but what is stored here:

- the state's SHA-256 digest (the callback finds the attempt by it, and claims it once);
- the digest of a random value kept in this browser's cookie (`iam_sso_browser`, HttpOnly,
  SameSite=Lax so that the provider's redirect back carries it, Secure on https): a callback
  arriving in another browser (a login CSRF, a forwarded link) does not complete;
- the nonce, which the ID token must carry;
- the PKCE verifier, sealed (secret_store.py): only this server can trade the code;
- `return_to`, checked against IAM_SSO_RETURN_URLS now and used as stored.

An attempt lives ATTEMPT_TTL seconds. The callback and the exchange are issue 13's next step.
"""
import secrets
from datetime import timedelta

from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, redirect, request

from .. import secret_store
from ..extensions import db
from ..jsonapi import JsonApiError
from ..models import IdentityProvider, SsoAttempt, utcnow
from ..resources.common import digest
from ..resources.identity_providers import callback_url
from . import provider as providers
from .realm import bad_return_to, return_to_allowed

ATTEMPT_TTL = 600
BROWSER_COOKIE = "iam_sso_browser"
COOKIE_PATH = "/api/v3/iam/auth/sso"
VERIFIER_PURPOSE = "sso_attempts.code_verifier"


def sso_failed(detail="Single sign-on did not complete; start again."):
    return JsonApiError(401, "sso_failed", "Unauthenticated", detail)


def provider_unavailable():
    return JsonApiError(503, "identity_provider_unavailable", "Service unavailable",
                        "The identity provider could not be reached or answered something unexpected; try again "
                        "later.", headers={"Retry-After": "30"})


def _provider_id():
    """The id asked for (a number no row can have is as unknown as a missing row: None)."""
    raw = request.args.get("identity_provider_id", "")
    if not raw.isascii() or not raw.isdigit():
        raise JsonApiError(400, "invalid_parameter", "Invalid query parameter",
                           "identity_provider_id must be an identity provider's id.",
                           parameter="identity_provider_id")
    return int(raw) if 0 < int(raw) < 2 ** 31 else None


def _browser_value():
    """This browser's value: kept when its cookie already holds a well-formed one (so attempts
    started in two tabs both complete), else a new one."""
    value = request.cookies.get(BROWSER_COOKIE, "")
    if len(value) == 43 and all(c.isalnum() or c in "-_" for c in value):
        return value
    return secrets.token_urlsafe(32)


def start(api):
    provider_id = _provider_id()
    login_hint = request.args.get("login_hint") or None
    if login_hint is not None and len(login_hint) > 320:
        raise JsonApiError(400, "invalid_parameter", "Invalid query parameter", "login_hint is at most 320 characters.",
                           parameter="login_hint")
    return_to = request.args.get("return_to") or None
    if return_to is not None and not return_to_allowed(return_to):
        raise bad_return_to(parameter="return_to")
    idp = db.session.get(IdentityProvider, provider_id) if provider_id is not None else None
    if idp is None or not idp.enabled:
        # An unknown id and a disabled provider look the same.
        raise sso_failed("There is no enabled identity provider with this id.")
    try:
        endpoints = providers.metadata(idp.issuer)
    except providers.ProviderUnavailable as error:
        current_app.logger.warning("identity provider %s (%s): %s", idp.id, idp.issuer, error)
        raise provider_unavailable() from None
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    browser = _browser_value()
    now = utcnow()
    db.session.add(SsoAttempt(
        state_digest=digest(state), browser_digest=digest(browser), identity_provider_id=idp.id, nonce=nonce,
        code_verifier_sealed=secret_store.seal(verifier, VERIFIER_PURPOSE), return_to=return_to,
        created_at=now, expires_at=now + timedelta(seconds=ATTEMPT_TTL)))
    client = OAuth2Session(idp.client_id, scope=idp.scopes, redirect_uri=callback_url(), code_challenge_method="S256")
    extra = {"login_hint": login_hint} if login_hint else {}
    url, _ = client.create_authorization_url(endpoints["authorization_endpoint"], state=state, nonce=nonce,
                                             code_verifier=verifier, **extra)
    db.session.commit()
    response = redirect(url, 302)
    # Set every time (a kept value gets ATTEMPT_TTL more seconds: the newest attempt may take them).
    response.set_cookie(BROWSER_COOKIE, browser, max_age=ATTEMPT_TTL, path=COOKIE_PATH, httponly=True,
                        samesite="Lax", secure=current_app.config["IAM_ISSUER"].startswith("https://"))
    return response


def register(api):
    def auth_sso_start():
        return start(api)

    api.blueprint.add_url_rule("/auth/sso/start", "auth_sso_start", auth_sso_start, methods=["GET"])
