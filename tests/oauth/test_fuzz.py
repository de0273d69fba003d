"""No 500 from the OpenID Provider or the sign-in pages for anything a client or a browser
sends: random parameters (known names with tricky values, repeated parameters, unknown names)
on every endpoint, each answering in its own format: OAuth error JSON on the JSON endpoints
(RFC 6749 section 5.2, RFC 6750), a page on the pages, a redirect only to a registered URI."""
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from werkzeug.datastructures import MultiDict

from tests.helpers import assert_jsonapi

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REDIRECT_URI = "https://app.example/callback"

text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
tricky = st.sampled_from(["", " ", "null", "S256", "plain", "code", "token", "openid", "openid profile email",
                          "none", "login", "consent", "-1", "0", "99999999999999999999", "%", "\\", "a.b.c",
                          "eyJhbGciOiJub25lIn0.e30.", "x" * 5000, REDIRECT_URI, REDIRECT_URI + "/", "//evil.example",
                          "https://evil.example/cb", "/oauth2/authorize?x", "authorization_code", "refresh_token",
                          "client_credentials", "password", "urn:ietf:params:oauth:grant-type:jwt-bearer", "\x1f",
                          "\u00e9t\u00e9", "a\"b", "\r\nX-Injected: 1"])
values = st.one_of(tricky, text)
NAMES = ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
         "code_challenge_method", "prompt", "max_age", "grant_type", "code", "code_verifier", "refresh_token",
         "client_secret", "token", "token_type_hint", "id_token_hint", "post_logout_redirect_uri", "access_token",
         "email", "password", "next", "csrf_token", "decision", "sso_code"]
params = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), text), values), max_size=8)

JSON_ENDPOINTS = [("POST", "/oauth2/token"), ("POST", "/oauth2/introspect"), ("POST", "/oauth2/revoke"),
                  ("GET", "/oauth2/userinfo"), ("POST", "/oauth2/userinfo")]
PAGES = [("GET", "/oauth2/authorize"), ("POST", "/oauth2/authorize"), ("GET", "/oauth2/logout"),
         ("POST", "/oauth2/logout"), ("GET", "/signin"), ("POST", "/signin"), ("POST", "/signin/password"),
         ("GET", "/signin/mfa"), ("POST", "/signin/mfa"), ("GET", "/signin/sso"), ("POST", "/signout")]


@pytest.fixture
def client_id(admin):
    created = assert_jsonapi(admin.post("/oauth_clients", {"data": {"type": "oauth_clients", "attributes": {
        "name": "Fuzzed", "client_type": "public", "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [REDIRECT_URI], "scopes": ["openid", "profile", "email"],
        "token_endpoint_auth_method": "none"}}}), 201)
    return created["data"]["attributes"]["client_id"]


def _with_client(pairs, client_id, use_client):
    return MultiDict([("client_id", client_id)] + pairs if use_client else pairs)


@FUZZ
@given(endpoint=st.sampled_from(JSON_ENDPOINTS), pairs=params, use_client=st.booleans(),
       auth=st.sampled_from([None, ("x", "y"), ("", ""), ("\u00e9", "\u00e9")]),
       bearer=st.sampled_from([None, "Bearer ", "Bearer a.b.c", "Bearer " + "x" * 9000, "Basic Og==", "bearer \t"]))
def test_json_endpoints_answer_oauth_errors(app, client_id, endpoint, pairs, use_client, auth, bearer):
    method, path = endpoint
    pairs = _with_client(pairs, client_id, use_client)
    headers = {"Authorization": bearer} if bearer else {}
    with app.test_client() as http:
        if auth:
            from base64 import b64encode
            headers["Authorization"] = "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if method == "GET":
            answer = http.get(path, query_string=pairs, headers=headers)
        else:
            answer = http.post(path, data=pairs, headers=headers)
    assert answer.status_code < 500, (path, pairs, headers, answer.get_data(as_text=True)[:300])
    assert answer.content_type.startswith("application/json"), (path, answer.content_type)
    body = answer.get_json()
    if answer.status_code >= 400:
        assert isinstance(body.get("error"), str), body
    elif path == "/oauth2/introspect":
        assert body == {"active": False} or body.get("active") is True


@FUZZ
@given(endpoint=st.sampled_from(PAGES), pairs=params, use_client=st.booleans(),
       cookie=st.sampled_from([None, "", "x", "x" * 43, "\u00e9" * 10]))
def test_pages_never_fail_and_never_redirect_off_site(app, client_id, endpoint, pairs, use_client, cookie):
    method, path = endpoint
    pairs = _with_client(pairs, client_id, use_client)
    with app.test_client() as http:
        if cookie is not None:
            http.set_cookie("iam_browser", cookie)
        answer = http.get(path, query_string=pairs) if method == "GET" else http.post(path, data=pairs)
    assert answer.status_code < 500, (path, pairs, answer.get_data(as_text=True)[:300])
    if answer.status_code in (301, 302, 303, 307, 308):
        location = answer.headers["Location"]
        target = urlsplit(location)
        # This server's own pages, or the client's registered redirect URI (an OAuth error for it).
        assert not target.netloc or location.startswith(REDIRECT_URI + "?") or target.netloc == "localhost", location
    else:
        assert answer.content_type.startswith("text/html"), (path, answer.content_type, pairs)


@pytest.mark.parametrize("header", ["Bearer ", "bearer \t", "Basic", "Basic ", "Basic Og==", "Basic ===="])
@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_a_malformed_authorization_is_an_oauth_error(app, client_id, header, path):
    """A scheme alone made Authlib raise (a 500 the fuzzer found on introspection and revocation)."""
    with app.test_client() as http:
        answer = http.post(path, data={"grant_type": "client_credentials", "token": "x"}, headers={"Authorization": header})
    assert answer.status_code in (400, 401) and answer.get_json()["error"] in ("invalid_client", "invalid_request")
