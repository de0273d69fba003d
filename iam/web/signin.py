"""The sign-in pages, which work without JavaScript:

1. `GET /signin?next=..` asks for the email; `POST /signin` finds how that email signs in
   (home-realm discovery, as POST /auth/login_url: by its domain only, never by whether an
   account exists): an organization's identity provider sends the browser there (through
   /api/v3/iam/auth/sso/start, back to `/signin/sso`), else the password page follows.
2. `POST /signin/password` checks the password as POST /auth/login does (one throttle, one
   lockout, one audit trail). A wrong one answers the same page and 401 whatever was wrong.
3. An account with a second factor then gets `/signin/mfa` (a code from the authenticator app
   or a recovery code), as POST /auth/mfa; the mfa_token waits in the signed page session,
   never in the page. With JavaScript, a passkey signs in too (static/passkey.js fetches its
   options from `POST /signin/mfa/passkey` and posts the assertion); without, the buttons stay hidden.
4. `GET /signin/sso?sso_code=..` (the identity provider's way back) trades the code as POST
   /auth/sso/exchange does.

Signed in, the browser gets its session (browser.py) and goes to `next`, which is only ever a
path of this server's authorization endpoint (`/oauth2/authorize?...`): anything else is
dropped, so the sign-in is no open redirector. `POST /signout` signs the browser out.
"""
import json
from urllib.parse import quote, urlsplit

from flask import current_app, jsonify, redirect, request, session as page_session, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from .. import audit
from ..auth import second_factor, sessions
from ..auth.views import check_password, password_signed_in
from ..extensions import db
from ..jsonapi import JsonApiError, JsonApiErrors
from ..mfa.signin import complete, mfa_policy_applies, new_challenge, passkey_options, pending
from ..models import utcnow
from ..resources.identity_providers import domain_of, provider_for_domain
from ..sso.flow import trade
from ..sso.realm import start_url
from . import browser
from .pages import answer_errors_in_kind, error_page, render, targets_for

NEXT_PREFIX = "/oauth2/authorize?"
SSO_RETURN_PATH = "/signin/sso"
INVALID_CREDENTIALS = "The email or password is not right, or this account cannot sign in with a password."


def safe_next(value):
    """`value` if it is a path of the authorization endpoint on this server, else None."""
    if not isinstance(value, str) or len(value) > 4096 or not value.startswith(NEXT_PREFIX):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(c in value for c in "\\\r\n\t "):
        return None
    return value


def _next():
    return safe_next(request.values.get("next"))


def _done(next_url):
    return redirect(next_url or url_for("web.signin"), 303)


class EmailForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired("Enter your email address."), Length(max=320)])
    next = HiddenField()


class PasswordForm(FlaskForm):
    email = HiddenField(validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=4096)])
    next = HiddenField()


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired("Enter the code."), Length(max=64)])
    next = HiddenField()


class PasskeyForm(FlaskForm):
    """A passkey's assertion (JSON), made by static/passkey.js with navigator.credentials.get."""
    factor_id = HiddenField(validators=[DataRequired(), Regexp(r"^[0-9]{1,10}$")])
    credential = HiddenField(validators=[DataRequired(), Length(max=16384)])
    next = HiddenField()


class CsrfOnlyForm(FlaskForm):
    """A form of nothing but its CSRF token (sign-out, a passkey's options)."""
    next = HiddenField()


def csrf_failed(form):
    """The form's CSRF token is missing, expired or not this browser's."""
    return "csrf_token" in form.errors


def expired_form():
    return error_page("This form has expired", "The page was open too long, or it was not sent from this site. "
                      "Go back, reload the page and try again.", 400)


def render_form(template, form, status=200, **context):
    next_url = form.next.data if hasattr(form, "next") else None
    return render(template, status, form_targets=targets_for(safe_next(next_url)), form=form, **context)


def signin():
    form = EmailForm()
    if request.method == "GET":
        form.next.data = _next()
        signed_in = browser.current()
        if signed_in is not None and request.args.get("reauth") == "1" and form.next.data:
            # The application asks for a fresh sign-in (prompt=login, max_age): the form, again.
            form.email.data = signed_in.account.email
            return render_form("signin_email.html", form, reauth=True)
        if signed_in is not None and form.next.data:
            return _done(form.next.data)
        return render_form("signin_email.html", form, signed_in=signed_in, signout=CsrfOnlyForm(next=None))
    if not form.validate_on_submit():
        if csrf_failed(form):
            return expired_form()
        return render_form("signin_email.html", form, 422)
    next_url = safe_next(form.next.data)
    email = form.email.data.strip()
    provider = provider_for_domain(db.session, domain_of(email))
    db.session.commit()
    if provider is not None and provider.enabled:  # as POST /auth/login_url answers
        back = f"{current_app.config['IAM_ISSUER']}{SSO_RETURN_PATH}" + (f"?next={quote(next_url, safe='')}"
                                                                          if next_url else "")
        return redirect(start_url(provider.id, login_hint=email, return_to=back), 303)
    return render_form("signin_password.html", PasswordForm(email=email, next=next_url, formdata=None))


def signin_password():
    form = PasswordForm()
    if not form.validate_on_submit():
        if csrf_failed(form):
            return expired_form()
        if not form.email.data:
            return redirect(url_for("web.signin", next=safe_next(form.next.data)), 303)
        return render_form("signin_password.html", form, 422)
    next_url, now = safe_next(form.next.data), utcnow()
    account = check_password(form.email.data, form.password.data, now)
    if account is None:
        return render_form("signin_password.html", form, 401, error=INVALID_CREDENTIALS)
    factors = second_factor.active_second_factors(account.id)
    if factors:
        meta, _ = new_challenge(account, now, ["pwd"], factors)
        db.session.commit()
        page_session["mfa_token"] = meta["mfa_token"]
        return redirect(url_for("web.signin_mfa", next=next_url), 303)
    password_signed_in(account, form.password.data, now)
    if mfa_policy_applies(account):
        db.session.commit()
        return enrolment_required()
    session = sessions.open_session(account, now, lifetime=current_app.config["IAM_REFRESH_TOKEN_TTL"])
    return _signed_in(session, next_url, now, audited=False)


def _signed_in(session, next_url, now, audited=True):
    """The browser signed in with `session`; `audited`: its sign-in was recorded already (the
    second factor's `login`, the identity provider's `sso_login`), else `login` is here."""
    if not audited:
        audit.record("login", actor_id=session.account_id, resource_type="account_sessions",
                     resource_id=session.id, organization_id=session.account.organization_id,
                     changes={"pages": True})
    page_session.pop("mfa_token", None)
    previous = browser.current(now)
    if previous is not None and previous.id != session.id:
        sessions.end(previous, now)  # this browser's earlier sign-in, replaced
    response = browser.adopt(session, _done(next_url))
    db.session.commit()
    return response


def enrolment_required():
    return error_page("Set up a second factor first",
                      "Your organization requires a second factor (an authenticator app or a passkey) and this "
                      "account has none yet. Sign in to the API and enrol one (POST /api/v3/iam/mfa_factors), "
                      "then sign in here again.", 403)


def _passkeys(raw, now):
    """The active passkeys of the sign-in waiting for this mfa_token."""
    challenge = pending(raw, now)
    if challenge is None:
        return []
    return [f for f in second_factor.active_second_factors(challenge.account_id) if f.kind == "webauthn"]


def _mfa_page(form, raw, status=200, error=None):
    return render_form("signin_mfa.html", form, status, error=error, passkeys=_passkeys(raw, utcnow()),
                       passkey_form=PasskeyForm(next=form.next.data, formdata=None))


def signin_mfa():
    form = CodeForm()
    raw = page_session.get("mfa_token")
    if not raw:
        return redirect(url_for("web.signin", next=_next()), 303)
    if request.method == "GET":
        form.next.data = _next()
        return _mfa_page(form, raw)
    if "credential" in request.form:
        form = PasskeyForm()
        valid, args = form.validate_on_submit(), None
        if valid:
            try:
                args = {"factor_id": form.factor_id.data, "credential": json.loads(form.credential.data)}
            except ValueError:
                valid = False
        code_form = CodeForm(next=form.next.data, formdata=None)
    else:
        valid, code_form = form.validate_on_submit(), form
        args = {"code": form.code.data.strip()} if valid else None
    if not valid:
        if csrf_failed(form):
            return expired_form()
        return _mfa_page(code_form, raw, 422)
    now, next_url = utcnow(), safe_next(form.next.data)
    try:
        session = complete(raw, args, now)
    except (JsonApiError, JsonApiErrors) as error:
        if getattr(error, "code", None) == "invalid_token":  # the mfa_token is used up or expired: start again
            page_session.pop("mfa_token", None)
            return redirect(url_for("web.signin", next=next_url), 303)
        message = "That passkey is not accepted." if "credential" in args else "That code is not accepted."
        return _mfa_page(code_form, raw, 401, error=message)
    return _signed_in(session, next_url, now)


def signin_mfa_passkey():
    """The request options for one of the sign-in's passkeys (fetched by static/passkey.js)."""
    raw = page_session.get("mfa_token")
    if not CsrfOnlyForm().validate_on_submit() or not raw:
        return jsonify({"error": "The form has expired; reload the page."}), 400
    factor_id = request.form.get("factor_id", "")
    challenge = pending(raw, utcnow())
    if challenge is None or not factor_id.isdigit() or len(factor_id) > 10:
        return jsonify({"error": "This sign-in has expired; start again."}), 400
    options = passkey_options(challenge, challenge.account_id, factor_id)
    if options is None:
        return jsonify({"error": "No such passkey."}), 400
    db.session.commit()
    return jsonify({"options": options})


def signin_sso():
    next_url, raw = _next(), request.args.get("sso_code", "")
    if not raw or len(raw) > 256:
        return error_page("Sign-in did not complete", "Single sign-on did not complete; start again.", 400)
    now = utcnow()
    try:
        kind, value = trade(raw, now)
    except JsonApiError:
        return error_page("Sign-in did not complete", "Single sign-on did not complete, or this link was "
                          "used already; start again.", 401)
    if kind == "second_step":
        page_session["mfa_token"] = value["mfa_token"]
        return redirect(url_for("web.signin_mfa", next=next_url), 303)
    if value.enrollment_only:
        db.session.commit()
        return enrolment_required()
    return _signed_in(value, next_url, now)


def signout():
    form = CsrfOnlyForm()
    if not form.validate_on_submit():
        return expired_form()
    now = utcnow()
    response = browser.end(browser.current(now), render("signed_out.html", back=None), now)
    db.session.commit()
    return response


def too_many(error):
    response = error_page("Too many attempts", "Too many sign-in attempts from this address. Wait a while, then "
                          "try again.", 429)
    retry = getattr(error, "retry_after", None)
    if retry:
        response.headers["Retry-After"] = str(retry)
    return response


def register(blueprint):
    from ..sso import realm
    if SSO_RETURN_PATH not in realm.OWN_RETURN_PATHS:
        realm.OWN_RETURN_PATHS.append(SSO_RETURN_PATH)
    blueprint.add_url_rule("/signin", "signin", signin, methods=["GET", "POST"])
    blueprint.add_url_rule("/signin/password", "signin_password", signin_password, methods=["POST"])
    blueprint.add_url_rule("/signin/mfa", "signin_mfa", signin_mfa, methods=["GET", "POST"])
    blueprint.add_url_rule("/signin/mfa/passkey", "signin_mfa_passkey", signin_mfa_passkey, methods=["POST"])
    blueprint.add_url_rule(SSO_RETURN_PATH, "signin_sso", signin_sso, methods=["GET"])
    blueprint.add_url_rule("/signout", "signout", signout, methods=["POST"])
    blueprint.register_error_handler(429, too_many)
    answer_errors_in_kind(blueprint)
