"""Security headers on every answer of the app, error answers included.

The API's answers are per-caller data (tokens, keys, accounts), /metrics, /healthz and
/readyz are live state, and the rest (the OpenAPI document, the docs page) is cheap to send
again: no answer may be kept by a browser or a shared cache, so each gets
`Cache-Control: no-store` unless its view chose a Cache-Control itself (the docs page's
static files do). Every answer also tells browsers not to guess its type, not to
be framed and not to leak its URL in a Referer; JSON answers get a Content-Security-Policy
that allows nothing, and a view serving a page (the docs, iam/docs.py) sets its own.

`init_app` registers an after_request function, which Flask runs on the answers of views
and of error handlers alike (unknown URLs, 405, 413, 500).
"""

NO_STORE = "no-store"
# JSON (and every other non-page answer): nothing to load, run or frame (base-uri is not a
# fetch directive, so default-src does not cover it).
API_POLICY = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
# Swagger UI at /api/v3/iam/docs: its scripts and styles are files of this server (the page
# has no inline script), its stylesheet draws icons as data: SVGs, and "Try it out" calls the
# API on the same origin.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


_FIXED = [(name, value, name.lower()) for name, value in HEADERS.items()]


def _secure(response):
    headers = response.headers
    # One look at the names already there (each `headers[name] = value` would scan them all
    # again); the fixed headers replace a view's, CSP and Cache-Control only fill in.
    present = {name.lower() for name in headers.keys()}
    for name, value, lowered in _FIXED:
        if lowered in present:
            headers[name] = value
        else:
            headers.add(name, value)
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", API_POLICY)
    if "cache-control" not in present:
        headers.add("Cache-Control", NO_STORE)
    return response


def init_app(app):
    app.after_request(_secure)
