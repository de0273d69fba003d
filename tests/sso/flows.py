"""Driving a sign-in the way a browser does: start here, the provider's sign-in form there (a real
HTTP request to the running provider), back to the callback here, in one cookie jar."""
from urllib.parse import urlsplit

import requests

START = "/api/v3/iam/auth/sso/start"
CALLBACK = "/api/v3/iam/auth/sso/callback"
EXCHANGE = "/api/v3/iam/auth/sso/exchange"


def set_user(issuer, sub, **claims):
    """The provider's user `sub`, with these claims (email and email_verified by default)."""
    claims.setdefault("email", f"{sub}@acme.example")
    claims.setdefault("email_verified", True)
    answer = requests.put(f"{issuer}/users/{sub}", json=claims, timeout=10)
    assert answer.status_code == 204, answer.text


def authorize(location, sub):
    """The provider's answer to its form posted for `sub`: the redirect back to the callback,
    as a path with its query."""
    answer = requests.post(location, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == CALLBACK, answer.headers["Location"]
    return f"{back.path}?{back.query}"


def begin(client, provider_id, **params):
    """GET /auth/sso/start in this browser (a test client): the provider's authorization URL."""
    answer = client.get(START, query_string={"identity_provider_id": provider_id, **params})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return answer.headers["Location"]


def sign_in(client, provider_id, sub, **params):
    """The whole round trip in one browser; the callback's answer."""
    return client.get(authorize(begin(client, provider_id, **params), sub))
