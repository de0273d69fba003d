"""The pages a person sees at the server's origin (contract section 10): sign-in (email first,
then the password, the organization's identity provider or the second factor), and the pages
the OpenID Provider (iam/oauth/) shows with them: consent, sign-out, errors.

- `pages.py`: rendering (Jinja2, autoescaped) with the pages' security headers: a CSP without
  inline script or style, no framing, no Referer, no caching;
- `browser.py`: the browser session, an account session whose cookie (`iam_browser`: 256
  random bits, stored as a digest; HttpOnly, SameSite=Lax, Secure when IAM_ISSUER is https)
  says who is signed in here;
- `signin.py`: the sign-in pages. They use the API's own checks (auth/views.check_password,
  mfa/signin.complete, sso/flow.trade): the same throttling, lockout and audit trail.

Every form carries a CSRF token (Flask-WTF), kept in a signed cookie session (`iam_pages`)
that only the page paths open; the API's requests keep no cookie at all.
"""
from flask import Blueprint, current_app
from flask.sessions import SecureCookieSessionInterface

# Paths whose requests open the signed cookie session (CSRF tokens, a sign-in in progress).
PAGE_PATHS = ("/signin", "/signout", "/oauth2/authorize", "/oauth2/logout")


class PageSession(SecureCookieSessionInterface):
    """Flask's signed cookie session on the page paths only; elsewhere none is read or set."""

    def open_session(self, app, request):
        if not request.path.startswith(PAGE_PATHS):
            return None  # Flask's null session
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if self.is_null_session(session):
            return None  # every request off the page paths: nothing to read, nothing to write
        return super().save_session(app, session, response)


def secure_cookies():
    return current_app.config["IAM_ISSUER"].startswith("https://")


def init_app(app):
    from . import signin

    secure = app.config["IAM_ISSUER"].startswith("https://")
    app.config.update(SESSION_COOKIE_NAME="iam_pages", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure)
    app.session_interface = PageSession()
    blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                          static_url_path="/assets")
    signin.register(blueprint)
    app.register_blueprint(blueprint)
