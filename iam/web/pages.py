"""Rendering a page, with the headers every page gets.

The CSP allows this server's stylesheet and scripts (no inline script or style), requests to
this server only (a passkey's options), no framing,
no plugins; `form-action` allows this server and, on a page of a sign-in for an application,
the origin of that application's registered redirect URI (browsers apply form-action to the
redirects that follow a form's submission, and the last one goes to the application).
FORM_TARGETS holds the functions that find that origin (iam/oauth/ adds one): each takes the
`next` URL of the sign-in and answers an origin or None.
"""
from urllib.parse import urlsplit

from flask import jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from ..jsonapi.errors import answer_for

FORM_TARGETS = []


def policy(form_targets=()):
    sources = " ".join(["'self'", *sorted(set(form_targets))])
    return ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; "
            f"form-action {sources}; frame-ancestors 'none'; base-uri 'none'")


def origin_of(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def targets_for(next_url):
    found = []
    for target in FORM_TARGETS:
        origin = target(next_url) if next_url else None
        if origin:
            found.append(origin)
    return found


def render(template, status=200, form_targets=(), **context):
    response = make_response(render_template(template, **context), status)
    response.headers["Content-Security-Policy"] = policy(form_targets)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(title, message, status=400, **context):
    return render("error.html", status, title=title, message=message, **context)


OAUTH_ERRORS = {503: "temporarily_unavailable", 500: "server_error"}


def answer_errors_in_kind(blueprint, json_endpoints=()):
    """Errors of `blueprint`'s views (a database outage, an unexpected failure, a 405 or 413)
    answer with the status and headers the API would give them, in the blueprint's own format:
    OAuth's error JSON for `json_endpoints` (RFC 6749 section 5.2), a page for the others."""

    def handle(error):
        if isinstance(error, HTTPException) and (error.code or 500) < 400:
            return error
        if unquotable(error):
            return bad_characters() if request.endpoint in json_endpoints else \
                error_page("This link is not valid", BAD_CHARACTERS, 400)
        answer = answer_for(error)
        status = answer.status_code
        if request.endpoint in json_endpoints:
            response = jsonify({"error": OAUTH_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request"),
                                "error_description": _detail(error, status)})
            response.status_code = status
        elif status == 503:
            response = error_page("Try again in a moment", "The server cannot reach its database right now. "
                                  "Wait a moment, then reload this page.", 503)
        elif status >= 500:
            response = error_page("Something went wrong", "The server failed to handle this request; it has "
                                  "been logged. Try again.", status)
        else:
            response = error_page("This page cannot be shown", _detail(error, status), status)
        for name in ("Retry-After", "Allow"):
            if name in answer.headers:
                response.headers[name] = answer.headers[name]
        return response

    blueprint.register_error_handler(Exception, handle)


BAD_CHARACTERS = "A parameter of the request holds characters that are not allowed in it."


def unquotable(error):
    """Authlib's refusal to quote a client's value holding characters an OAuth error may not
    carry (RFC 6749 section 5.2: error_description is printable ASCII): the client's mistake."""
    return isinstance(error, ValueError) and str(error).startswith("Error description contains forbidden characters")


def bad_characters():
    response = jsonify({"error": "invalid_request", "error_description": BAD_CHARACTERS})
    response.status_code = 400
    return response


def _detail(error, status):
    if status == 503:
        return "The service is unavailable for a moment; try again."
    if status >= 500:
        return "The server failed to handle this request; it has been logged."
    if isinstance(error, HTTPException):
        return error.description or error.name
    return "The request cannot be handled."
