"""Home-realm discovery: `POST /auth/login_url {"email", "return_to"?}`.

The answer depends only on the email's domain: `method: "sso"` with the URL that starts the
provider's sign-in when an enabled identity provider holds the domain, else `method:
"password"`. Whether an account with that email exists is never looked at, so the answer
cannot tell (the systems this server replaces answer the same way).

`return_to`, where the browser goes once signed in, must lie under one of
`IAM_SSO_RETURN_URLS`: the same scheme, host and port as an entry, and a path under the
entry's (at a `/` boundary, so `https://app.example/cb` allows `/cb` and `/cb/x`, never
`/cbx` or `https://app.example.evil/`). Anything else is a 400: an open redirector is how
phishing borrows a trusted origin.
"""
from urllib.parse import urlencode, urlsplit

from flask import current_app, request
from marshmallow import Schema, fields, validate

from ..auth.views import parse_auth_body
from ..extensions import db
from ..jsonapi import JsonApiError
from ..jsonapi.documents import JSONAPI_OBJECT
from ..jsonapi.errors import json_pointer
from ..jsonapi.media import check_accept
from ..resources.identity_providers import domain_of, provider_for_domain


class LoginUrlSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    return_to = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2048))


def _split(url):
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, parts


# Paths of this server that a sign-in may return to (the sign-in pages add theirs, iam/web/).
OWN_RETURN_PATHS = []


def return_to_allowed(url, allowed=None):
    """Whether a browser may be sent to `url` after signing in (see the module's docstring)."""
    if allowed is None:
        issuer = current_app.config["IAM_ISSUER"]
        allowed = [*current_app.config["IAM_SSO_RETURN_URLS"], *(issuer + path for path in OWN_RETURN_PATHS)]
    try:
        scheme, host, port, parts = _split(url)
    except ValueError:  # a port that is not a number, an unclosed IPv6 bracket
        return False
    if scheme not in ("https", "http") or not host or parts.username or parts.password or parts.fragment \
            or any(c in url for c in "\\\r\n\t "):
        return False
    for entry in allowed:
        try:
            e_scheme, e_host, e_port, e_parts = _split(entry)
        except ValueError:
            continue
        if (scheme, host, port) != (e_scheme, e_host, e_port):
            continue
        base, path = e_parts.path.rstrip("/"), parts.path or "/"
        if not base or path == base or path.startswith(base + "/"):
            return True
    return False


def bad_return_to(parameter=None):
    """The 400 for a return_to outside IAM_SSO_RETURN_URLS: in the body, or a query `parameter`."""
    pointer = None
    if parameter is None:
        pointer = (json_pointer("data", "attributes", "return_to") if getattr(request, "_iam_wrapped", False)
                   else json_pointer("return_to"))
    return JsonApiError(400, "invalid_return_to", "Bad request",
                        "return_to must lie under one of the server's IAM_SSO_RETURN_URLS.",
                        pointer=pointer, parameter=parameter)


def start_url(provider_id, login_hint=None, return_to=None):
    """The URL that starts a provider's sign-in in a browser (GET /auth/sso/start)."""
    query = {"identity_provider_id": str(provider_id)}
    if login_hint:
        query["login_hint"] = login_hint
    if return_to:
        query["return_to"] = return_to
    return f"{current_app.config['IAM_ISSUER']}/api/v3/iam/auth/sso/start?{urlencode(query)}"


def login_url(api):
    check_accept()
    args = parse_auth_body(LoginUrlSchema)
    email, return_to = args["email"].strip(), args.get("return_to")
    if return_to is not None and not return_to_allowed(return_to):
        raise bad_return_to()
    provider = provider_for_domain(db.session, domain_of(email))
    if provider is None or not provider.enabled:
        meta = {"method": "password"}
    else:
        meta = {"method": "sso", "identity_provider_id": str(provider.id),
                "url": start_url(provider.id, login_hint=email, return_to=return_to)}
    return api.respond({"meta": meta, "jsonapi": JSONAPI_OBJECT})


def register(api):
    def auth_login_url():
        return login_url(api)

    api.blueprint.add_url_rule("/auth/login_url", "auth_login_url", auth_login_url, methods=["POST"])
