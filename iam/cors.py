"""CORS: browser apps on the origins of IAM_CORS_ORIGINS may call the API (flask-cors).

Only `/api/v3/iam/...` answers, and only to a request whose `Origin` is one of the configured
exact origins (iam/config.py checks and normalises them at start-up), get the CORS headers:
`Access-Control-Allow-Origin` (that origin, never `*`) and `Access-Control-Expose-Headers`,
and on a preflight the allowed methods and request headers and how long a browser may keep
the answer. No credentials (cookies): the API authenticates with bearer tokens. Any other
origin, a request without `Origin`, and /metrics, /healthz, /readyz get no CORS header.

Preflights are Flask's automatic OPTIONS answers (204, iam/jsonapi/media.py), so they pass
through the app's after_request functions like any answer and keep the security headers.
"""
import re

from flask import request
from flask_cors import CORS

API_PATHS = r"/api/v3/iam/.*"
METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]
ALLOW_HEADERS = ["Accept", "Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID"]
EXPOSE_HEADERS = ["ETag", "Location", "Retry-After", "X-Request-ID"]
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


def _exact(origin):
    """An origin as a pattern flask-cors matches whole (a plain string would be taken for a
    regular expression when it holds `[`, as an IPv6 address does)."""
    return re.compile(re.escape(origin) + r"\Z", re.IGNORECASE)


def init_app(app):
    origins = app.config.get("IAM_CORS_ORIGINS") or ()
    if not origins:
        return
    CORS(app, resources={API_PATHS: {}}, origins=[_exact(o) for o in origins], methods=METHODS,
         allow_headers=ALLOW_HEADERS, expose_headers=EXPOSE_HEADERS, supports_credentials=False,
         max_age=PREFLIGHT_MAX_AGE, vary_header=False,  # Vary: Origin below, on every API answer
         always_send=False,  # no Origin, no CORS header (flask-cors would list every origin)
         intercept_exceptions=False)  # error answers pass through after_request all the same

    @app.after_request
    def _vary_on_origin(response):
        # An API answer depends on Origin whatever it is (allowed or not): caches must know.
        if re.fullmatch(API_PATHS, request.path):
            response.vary.add("Origin")
        return response
