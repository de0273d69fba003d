"""Rendering a page, with the headers every page gets.

The CSP allows this server's stylesheet and scripts (no inline script or style), no framing,
no plugins; `form-action` allows this server and, on a page of a sign-in for an application,
the origin of that application's registered redirect URI (browsers apply form-action to the
redirects that follow a form's submission, and the last one goes to the application).
FORM_TARGETS holds the functions that find that origin (iam/oauth/ adds one): each takes the
`next` URL of the sign-in and answers an origin or None.
"""
from urllib.parse import urlsplit

from flask import make_response, render_template

FORM_TARGETS = []


def policy(form_targets=()):
    sources = " ".join(["'self'", *sorted(set(form_targets))])
    return ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
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
