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

An attempt lives ATTEMPT_TTL seconds.

`GET /auth/sso/callback?code=..&state=..` (step 2) claims the attempt by the state's digest
with one conditional UPDATE, committed before anything else (a replayed state finds it
claimed, even while the first callback is still talking to the provider), checks the browser
cookie, trades the code at the provider's token endpoint (Authlib's client: the sealed
verifier, the sealed client secret, bounded time and size, no redirects followed), validates
the ID token (id_token.py), requires a verified email in the provider's domains and resolves
the account (accounts.py). The session it opens records `amr: ["sso"]`.

Without `return_to` the callback answers the login document. With one, it answers 302 to
`return_to?sso_code=..`: a code valid once for CODE_TTL seconds that the application trades at
`POST /auth/sso/exchange {"code"}` for the login document (so no token travels in a URL; the
refresh token is made at the exchange). A code presented a second time ends the session it
opened: whoever holds a copy is not the application that already traded it.

Every refusal answers the one 401 `sso_failed` (or `no_account`), whatever went wrong, and is
audited (`sso_failed`, with the reason) and logged; only malformed requests get a 400.
"""
import hmac
import secrets
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from authlib.common.errors import AuthlibBaseError
from email_validator import EmailNotValidError, validate_email
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, redirect, request
from marshmallow import Schema, fields, validate
from sqlalchemy import delete, select, update

from .. import audit, secret_store
from ..auth import second_factor, sessions
from ..auth.views import committed_session_document, parse_auth_body
from ..extensions import db
from ..jsonapi import JsonApiError
from ..jsonapi.media import check_accept
from ..models import (AccountIdentity, AccountSession, IdentityProvider, Invitation, MfaChallenge,
                      SsoAttempt, SsoCode, utcnow)
from ..jsonapi.documents import JSONAPI_OBJECT
from ..models.base import record_activity
from ..resources.common import digest
from ..resources import invitations
from ..resources.identity_providers import callback_url, client_secret, domain_of
from . import accounts, id_token
from . import provider as providers
from .realm import bad_return_to, return_to_allowed

ATTEMPT_TTL = 600
CODE_TTL = 60
MFA_TOKEN_TTL = 300  # as a password's second step (iam/mfa/signin.py)
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


def _invitation():
    """The pending invitation whose token is `invitation_token` (None without one); a 400 for any
    other token: unknown, used, revoked, expired, or of an invitation accepted with a password."""
    raw = request.args.get("invitation_token")
    if raw is None:
        return None
    invitation = None
    if 0 < len(raw) <= 256:
        invitation = db.session.scalars(select(Invitation).where(Invitation.token_digest == digest(raw))).one_or_none()
    if invitation is None or invitation.status != "pending" or invitation.identity_provider_id is None:
        raise JsonApiError(400, "invalid_token", "Bad request",
                           "The invitation is invalid, used, revoked or expired, or is not accepted through an "
                           "identity provider.", parameter="invitation_token")
    return invitation


def start(api):
    invitation = _invitation()
    if invitation is not None and "identity_provider_id" not in request.args:
        provider_id = invitation.identity_provider_id
    else:
        provider_id = _provider_id()
        if invitation is not None and provider_id != invitation.identity_provider_id:
            raise JsonApiError(400, "invalid_parameter", "Invalid query parameter",
                               "The invitation is accepted through another identity provider.",
                               parameter="identity_provider_id")
    login_hint = request.args.get("login_hint") or (invitation.email if invitation is not None else None)
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
    # Attempts and codes past their time are of no use: each start sweeps them (indexed by expiry).
    db.session.execute(delete(SsoAttempt).where(SsoAttempt.expires_at < now)
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(SsoCode).where(SsoCode.expires_at < now).execution_options(synchronize_session=False))
    db.session.add(SsoAttempt(
        state_digest=digest(state), browser_digest=digest(browser), identity_provider_id=idp.id, nonce=nonce,
        code_verifier_sealed=secret_store.seal(verifier, VERIFIER_PURPOSE), return_to=return_to,
        invitation_id=invitation.id if invitation is not None else None, created_at=now, expires_at=now + timedelta(seconds=ATTEMPT_TTL)))
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


class Failed(Exception):
    """A refused sign-in: `reason` goes to the log and the audit trail; `error` to the browser."""

    def __init__(self, reason, provider=None, account=None, error=None):
        super().__init__(reason)
        self.reason, self.provider, self.account, self.error = reason, provider, account, error


def no_account():
    return JsonApiError(401, "no_account", "Unauthenticated",
                        "No account may sign in with this identity; ask your administrator for an invitation.")


def _failed(failure):
    """Record the refusal (nothing else of the request is kept) and answer it."""
    db.session.rollback()
    provider, account = failure.provider, failure.account
    current_app.logger.info("single sign-on refused (identity provider %s): %s",
                            provider.id if provider is not None else "unknown", failure.reason)
    audit.record("sso_failed", actor_id=account.id if account is not None else None,
                 resource_type="identity_providers" if provider is not None else None,
                 resource_id=provider.id if provider is not None else None,
                 organization_id=provider.organization_id if provider is not None else None,
                 changes={"reason": failure.reason[:500]})
    db.session.commit()
    return failure.error or sso_failed()


def _query_parameter(name, required=True, limit=2048):
    value = request.args.get(name)
    if (value is None or value == "") and not required:
        return None
    if not value or len(value) > limit:
        raise JsonApiError(400, "invalid_parameter", "Invalid query parameter",
                           f"{name} is required and at most {limit} characters.", parameter=name)
    return value


def _claim_attempt(state, now):
    """The attempt this state started, claimed for this callback; None if unknown, used or expired."""
    state_digest = digest(state)
    claimed = db.session.execute(
        update(SsoAttempt).where(SsoAttempt.state_digest == state_digest, SsoAttempt.used_at.is_(None),
                                 SsoAttempt.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    db.session.commit()  # a replay running beside this callback must find it claimed
    if not claimed:
        return None
    return db.session.scalars(select(SsoAttempt).where(SsoAttempt.state_digest == state_digest)).one()


def _limit_body(response, *args, **kwargs):
    """Authlib's hook on the token answer: read at most MAX_DOCUMENT bytes of it."""
    body = response.raw.read(providers.MAX_DOCUMENT + 1, decode_content=True)
    if len(body) > providers.MAX_DOCUMENT:
        raise providers.ProviderUnavailable(f"the token endpoint answered more than {providers.MAX_DOCUMENT} bytes")
    response._content = body
    return response


def _auth_method(endpoints, secret):
    if secret is None:
        return "none"
    supported = endpoints.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return "client_secret_post" if "client_secret_basic" not in supported and "client_secret_post" in supported \
        else "client_secret_basic"


def _trade_code(idp, endpoints, attempt, code):
    """The provider's token answer for the code (Failed when it refuses it)."""
    secret = client_secret(idp)
    client = OAuth2Session(idp.client_id, secret, token_endpoint_auth_method=_auth_method(endpoints, secret),
                           redirect_uri=callback_url(), default_timeout=providers.TIMEOUT)
    client.register_compliance_hook("access_token_response", _limit_body)
    verifier = secret_store.unseal(attempt.code_verifier_sealed, VERIFIER_PURPOSE)
    try:
        with client:
            return client.fetch_token(endpoints["token_endpoint"], grant_type="authorization_code", code=code,
                                      code_verifier=verifier, allow_redirects=False, stream=True)
    except AuthlibBaseError as error:
        raise Failed(f"the token endpoint refused the code ({error.error})", idp) from None
    except requests.HTTPError as error:
        status = error.response.status_code
        if status >= 500:  # the provider's trouble, not the sign-in's: try again later
            raise providers.ProviderUnavailable(f"the token endpoint answered {status}") from None
        raise Failed(f"the token endpoint answered {status}", idp) from None
    except requests.RequestException as error:
        raise providers.ProviderUnavailable(f"the token endpoint could not be reached ({type(error).__name__})") \
            from None
    except ValueError:
        raise Failed("the token endpoint did not answer a token", idp) from None


# Issuer -> the claim naming the organization an account belongs to there, which must be one of
# the provider's email domains. Anyone may make a Google account for an address they receive
# mail at: only the hosted domain (`hd`) says the account is one of the organization's Google
# Workspace.
HOSTED_DOMAIN_CLAIMS = {"https://accounts.google.com": "hd"}
# The claims that say the email may be trusted: OpenID Connect's own, and Microsoft Entra ID's
# (which never sends email_verified; `xms_edov`, an optional claim, says the email's domain is
# one the tenant has verified). A boolean by the standards; some providers send the string "true".
VERIFIED = ("email_verified", "xms_edov")


def _verified(claims):
    return any(claims.get(name) in (True, "true") for name in VERIFIED)


def _with_userinfo(idp, endpoints, token, claims):
    """The ID token's claims, completed from the UserInfo endpoint when they lack the email or
    its verification (Core section 5.3; Okta's org server sends a thin ID token in this flow).
    The UserInfo answer counts only for the same `sub` (section 5.3.4); the ID token's own
    claims are kept where both have one."""
    if isinstance(claims.get("email"), str) and _verified(claims):
        return claims
    url, access_token = endpoints.get("userinfo_endpoint"), token.get("access_token")
    if not isinstance(url, str) or not url or not isinstance(access_token, str) or not access_token:
        return claims
    info = providers.fetch_json(url, headers={"Authorization": f"Bearer {access_token}"})
    if info.get("sub") != claims["sub"]:
        raise Failed("the UserInfo answer is about another subject than the ID token", idp)
    return {**info, **{name: value for name, value in claims.items() if value is not None}}


def _verified_email(idp, claims):
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise Failed("the ID token carries no email", idp)
    try:  # the rules of an email an account may have (accounts.py), before the email is logged
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        raise Failed("the ID token's email is not an email address", idp) from None
    if not _verified(claims):
        raise Failed(f"the provider has not verified {email}", idp)
    domains = {domain.lower() for domain in idp.email_domains}
    if domain_of(email) not in domains:
        raise Failed(f"{email} is outside the provider's email domains", idp)
    hosted = HOSTED_DOMAIN_CLAIMS.get(idp.issuer)
    if hosted is not None and str(claims.get(hosted, "")).lower() not in domains:
        raise Failed(f"{email} is not an account of the organization's own domain at the provider ({hosted})", idp)
    return email


def _accept_invitation(idp, invitation_id, claims, email, now):
    """The account made by accepting the invitation this sign-in started from: the provider's
    verified email must be the invited one, and the identity is linked to the new account."""
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.identity_provider_id != idp.id:
        raise Failed("the invitation is no longer accepted through this identity provider", idp)
    if email.lower() != invitation.email.lower():
        raise Failed(f"signed in as {email}, but the invitation is for {invitation.email}", idp)
    if accounts.linked(idp, claims["sub"]) is not None:
        raise Failed("this identity at the provider already has an account", idp)
    try:
        account = invitations.accept(invitation, now, accounts.person_values(idp.claim_mapping, claims),
                                     auth_type="sso", password_hash=None, last_login_at=now)
    except JsonApiError as conflict:  # its email has an account meanwhile
        raise Failed(f"{invitation.email} already has an account", idp, error=conflict) from None
    if account is None:
        raise Failed("the invitation is no longer pending", idp)
    db.session.add(AccountIdentity(account_id=account.id, identity_provider_id=idp.id, subject=claims["sub"],
                                   email=email, last_login_at=now))
    db.session.flush()
    return account


def _with_code(url, code):
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "sso_code"]
    return urlunsplit(parts._replace(query=urlencode(query + [("sso_code", code)])))


def callback(api):
    state = _query_parameter("state", limit=512)
    error = _query_parameter("error", required=False, limit=256)
    code = None if error is not None else _query_parameter("code")
    now = utcnow()
    try:
        attempt = _claim_attempt(state, now)
        if attempt is None:
            raise Failed("the state is unknown, used or expired")
        idp = db.session.get(IdentityProvider, attempt.identity_provider_id)
        browser = request.cookies.get(BROWSER_COOKIE, "")
        if not hmac.compare_digest(digest(browser).encode(), attempt.browser_digest.encode()):
            raise Failed("the callback arrived in another browser than the one that started", idp)
        if not idp.enabled:
            raise Failed("the identity provider is disabled", idp)
        if error is not None:
            described = "".join(c for c in error if c.isprintable())[:100]
            raise Failed(f"the identity provider answered the error {described!r}", idp)
        try:
            endpoints = providers.metadata(idp.issuer)
            token = _trade_code(idp, endpoints, attempt, code)
            claims = id_token.validate(
                token.get("id_token"), issuer=idp.issuer, client_id=idp.client_id, nonce=attempt.nonce,
                jwks_uri=endpoints["jwks_uri"], advertised=endpoints.get("id_token_signing_alg_values_supported"))
            claims = _with_userinfo(idp, endpoints, token, claims)
        except id_token.InvalidIdToken as invalid:
            raise Failed(f"ID token refused: {invalid}", idp) from None
        except providers.ProviderUnavailable as unavailable:
            raise Failed(f"the identity provider is unavailable: {unavailable}", idp,
                         error=provider_unavailable()) from None
        email = _verified_email(idp, claims)
        try:
            if attempt.invitation_id is not None:
                account, how = _accept_invitation(idp, attempt.invitation_id, claims, email, now), "invitation"
            else:
                account, how = accounts.resolve(idp, claims, email, now)
        except accounts.NoAccount as missing:
            raise Failed(str(missing), idp, error=no_account()) from None
        except accounts.Refused as refused:
            raise Failed(str(refused), idp) from None
        if not account.is_active(now):
            raise Failed(f"the account {account.id} is disabled or expired", idp, account)
    except Failed as failure:
        raise _failed(failure) from None
    # The provider verified this email: when it is the account's, the account's email is verified.
    verified = {"email_verified_at": now} if account.email.lower() == email.lower() else {}
    if how not in ("sso_jit", "invitation"):
        record_activity(db.session, account, now, last_login_at=now, **verified)
    elif verified:
        account.email_verified_at = now
    _audit_resolution(how, account, idp, attempt, claims)
    step = second_factor.after_sso(account, now, claims.get("amr"))
    if step is not None and step[0] == "challenge":
        return _second_step(attempt, step[1], step[2])
    enrol = step is not None  # an mfa_required policy, and no factor yet: a session to enrol one
    session = sessions.open_session(account, now, amr=["sso"], enrollment_only=enrol,
                                    lifetime=current_app.config["IAM_ACCESS_TOKEN_TTL"] if enrol else None)
    audit.record("sso_login", actor_id=account.id, resource_type="account_sessions", resource_id=session.id,
                 organization_id=account.organization_id,
                 changes={"identity_provider_id": idp.id, **({"enrollment_only": True} if enrol else {})})
    if attempt.return_to is None:
        return _login_document(api, session, now)
    raw = secrets.token_urlsafe(32)
    db.session.add(SsoCode(code_digest=digest(raw), session_id=session.id, created_at=now,
                           expires_at=now + timedelta(seconds=CODE_TTL)))
    db.session.commit()
    return _back_to(attempt.return_to, raw)


def _audit_resolution(how, account, idp, attempt, claims):
    if how == "invitation":
        audit.record("invitation_accepted", actor_id=account.id, resource_type="invitations",
                     resource_id=attempt.invitation_id, organization_id=account.organization_id,
                     changes={"identity_provider_id": idp.id, "subject": claims["sub"]})
    elif how is not None:
        audit.record(how, actor_id=account.id, resource_type="accounts", resource_id=account.id,
                     organization_id=account.organization_id,
                     changes={"identity_provider_id": idp.id, "subject": claims["sub"]})


def _login_document(api, session, now):
    """The login answer; a session that may only enrol a factor gets no refresh token, and says so."""
    if session.enrollment_only:
        document = committed_session_document(api, session, now)
        document["meta"]["mfa_enrollment_required"] = True
        return document
    return committed_session_document(api, session, now, sessions.new_refresh_token(session))


def _second_step(attempt, meta, challenge):
    """An mfa_required policy wants a second factor the provider did not report: the
    mfa_required answer, or, for an application (return_to), an sso_code the exchange trades for
    it (the mfa_token is made then: no token travels in a URL)."""
    if attempt.return_to is None:
        db.session.commit()
        return {"meta": meta, "jsonapi": JSONAPI_OBJECT}
    raw = secrets.token_urlsafe(32)
    challenge.token_digest, challenge.sso_code_digest = None, digest(raw)
    challenge.expires_at = min(challenge.expires_at, challenge.created_at + timedelta(seconds=CODE_TTL))
    db.session.commit()
    return _back_to(attempt.return_to, raw)


def _back_to(return_to, raw):
    response = redirect(_with_code(return_to, raw), 302)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


class ExchangeSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=256))


def _invalid_code():
    return JsonApiError(401, "sso_failed", "Unauthenticated", "The code is invalid, used or expired; sign in again.")


def exchange(api):
    check_accept()
    args = parse_auth_body(ExchangeSchema)
    now = utcnow()
    kind, value = trade(args["code"], now)
    if kind == "second_step":
        return {"meta": value, "jsonapi": JSONAPI_OBJECT}
    return _login_document(api, value, now)


def trade(raw, now):
    """What an sso_code stands for, traded once: ("session", the session it opened) or
    ("second_step", the mfa_required meta, committed); JsonApiError 401 otherwise. POST
    /auth/sso/exchange and the sign-in pages (iam/web/) both trade here."""
    code_digest = digest(raw)
    row = db.session.scalars(select(SsoCode).where(SsoCode.code_digest == code_digest)).one_or_none()
    if row is None:
        return "second_step", _exchange_for_second_step(code_digest, now)
    claimed = db.session.execute(
        update(SsoCode).where(SsoCode.id == row.id, SsoCode.used_at.is_(None), SsoCode.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    session = db.session.get(AccountSession, row.session_id)
    if not claimed:
        db.session.rollback()
        if row.used_at is not None and session is not None:
            # A second use: someone else holds a copy of the code. The session it opened ends.
            sessions.end(session, now)
            audit.record("token_reuse", actor_id=session.account_id, resource_type="account_sessions",
                         resource_id=session.id, organization_id=session.account.organization_id,
                         changes={"reused": "sso_code"})
            db.session.commit()
        raise _invalid_code()
    if session is None or not session.is_active(now) or not session.account.is_active(now):
        db.session.commit()
        raise _invalid_code()
    return "session", session


def _exchange_for_second_step(code_digest, now):
    """An sso_code of a sign-in that still needs its second factor: traded once for an mfa_token
    (then POST /auth/mfa, as after a password)."""
    challenge = db.session.scalars(select(MfaChallenge).where(MfaChallenge.sso_code_digest == code_digest)
                                   ).one_or_none()
    if challenge is None or challenge.expires_at <= now or challenge.used_at is not None:
        raise _invalid_code()
    raw = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=MFA_TOKEN_TTL)
    claimed = db.session.execute(
        update(MfaChallenge).where(MfaChallenge.id == challenge.id, MfaChallenge.sso_code_digest == code_digest)
        .values(sso_code_digest=None, token_digest=digest(raw), expires_at=expires_at)
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        db.session.rollback()
        raise _invalid_code()
    factors = second_factor.active_second_factors(challenge.account_id)
    db.session.commit()
    return second_factor.challenge_meta(raw, expires_at, factors)


def register(api):
    def auth_sso_start():
        return start(api)

    def auth_sso_callback():
        return callback(api)

    def auth_sso_exchange():
        return exchange(api)

    api.blueprint.add_url_rule("/auth/sso/start", "auth_sso_start", auth_sso_start, methods=["GET"])
    api.blueprint.add_url_rule("/auth/sso/callback", "auth_sso_callback", auth_sso_callback, methods=["GET"])
    api.blueprint.add_url_rule("/auth/sso/exchange", "auth_sso_exchange", auth_sso_exchange, methods=["POST"])
