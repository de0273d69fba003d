"""Fixtures of the OpenID Provider tests: the server on a real socket whose IAM_ISSUER is its own
URL (so that a relying party's discovery and ID token checks see one issuer), a relying party's
redirect URI served by a small HTTP server of the test, registered applications, and a headless
Chromium (Debian's, /usr/bin/chromium, driven by Playwright; never a downloaded browser)."""
import base64
import hashlib
import os
import secrets
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.serving import make_server

from tests.helpers import assert_jsonapi

CHROMIUM = os.environ.get("IAM_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("IAM_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) \
    / "screenshots"


@contextmanager
def serving_as_issuer(app, host="127.0.0.1"):
    """The app on a free port of 127.0.0.1, IAM_ISSUER set to its URL (with `host`) meanwhile."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://{host}:{server.server_port}"
    before = app.config["IAM_ISSUER"]
    app.config["IAM_ISSUER"] = url
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.config["IAM_ISSUER"] = before


@pytest.fixture
def issuer(app):
    """The app on a real socket as its own issuer, for the test."""
    with serving_as_issuer(app) as url:
        yield url


@pytest.fixture
def localhost_issuer(app):
    """The same at http://localhost:<port>: a passkey's relying party id must be a domain name."""
    with serving_as_issuer(app, "localhost") as url:
        yield url


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.hits.append(self.path)
        body = b"<!doctype html><title>Relying party</title><h1>Back at the application</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class RelyingParty:
    """The application's side: its redirect URI (an HTTP server that records what arrives)."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
        self.server.hits = []
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.redirect_uri = f"{self.base}/callback"
        self.post_logout_uri = f"{self.base}/signed-out"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def hits(self):
        return self.server.hits

    def arrivals(self, path="/callback"):
        """The requests that arrived at `path` (not the browser's /favicon.ico)."""
        return [hit for hit in self.hits if urlsplit(hit).path == path]

    def last(self, path="/callback"):
        """The query of the last request that arrived at `path`, as a dict of single values."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.arrivals(path)[-1]).query).items()}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relying_party():
    rp = RelyingParty()
    yield rp
    rp.close()


@pytest.fixture
def register_client(admin, relying_party):
    """register_client(**attributes) -> (client_id, client_secret or None): an application
    registered through the API, by default confidential with the code and refresh grants."""
    def register(**attributes):
        attributes = {"name": "Timesheets", "client_type": "confidential",
                      "grant_types": ["authorization_code", "refresh_token"],
                      "redirect_uris": [relying_party.redirect_uri],
                      "post_logout_redirect_uris": [relying_party.post_logout_uri],
                      "scopes": ["openid", "profile", "email", "roles", "offline_access"],
                      "token_endpoint_auth_method": "client_secret_basic", **attributes}
        created = assert_jsonapi(admin.post("/oauth_clients", {"data": {"type": "oauth_clients",
                                                                         "attributes": attributes}}), 201)
        return created["data"]["attributes"]["client_id"], created.get("meta", {}).get("client_secret")
    return register


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium of Debian's package, driven by Playwright for Python."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    """A fresh browser context (no cookies) and its page; `page.shot(name)` keeps a screenshot."""
    context = chromium.new_context(viewport={"width": 900, "height": 760})
    page = context.new_page()
    page.set_default_timeout(15000)
    database = request.node.callspec.params.get("database_url", "") if hasattr(request.node, "callspec") else ""
    suffix = "postgresql" if "postgresql" in str(database) else "sqlite"

    def shot(name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{suffix}.png"), full_page=True)
    page.shot = shot
    yield page
    context.close()
