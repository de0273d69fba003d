"""An identity provider's OpenID Connect metadata, fetched and kept (OpenID Connect Discovery 1.0).

`ISSUER/.well-known/openid-configuration` is fetched when first needed and kept for
METADATA_TTL seconds per issuer, in this process. Its `issuer` must be exactly the configured
issuer (Discovery section 4.3: otherwise a document served at one URL could speak for another
issuer), and it must name an authorization and a token endpoint and a `jwks_uri`. A provider
that cannot be reached, or answers something else, is `ProviderUnavailable`: the request that
needed it answers 503 and nothing is stored.
"""
import json
import threading
import time

import requests

METADATA_TTL = 3600
TIMEOUT = (3.05, 5)          # connect, read (seconds)
MAX_DOCUMENT = 1024 * 1024   # a discovery document or a key set larger than this is refused
REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")

_lock = threading.Lock()
_metadata = {}  # issuer -> (fetched at, document)


class ProviderUnavailable(Exception):
    """The provider could not be reached, or its answer is not what OpenID Connect says."""


def fetch_json(url, session=None, headers=None):
    """A JSON object from `url`, within TIMEOUT and MAX_DOCUMENT; ProviderUnavailable otherwise."""
    try:
        response = (session or requests).get(url, timeout=TIMEOUT, headers={"Accept": "application/json", **(headers or {})},
                                             stream=True, allow_redirects=False)
        body = response.raw.read(MAX_DOCUMENT + 1, decode_content=True)
        response.close()
    except requests.RequestException as error:
        raise ProviderUnavailable(f"{url} could not be reached ({type(error).__name__})") from None
    if response.status_code != 200:
        raise ProviderUnavailable(f"{url} answered {response.status_code}")
    if len(body) > MAX_DOCUMENT:
        raise ProviderUnavailable(f"{url} answered more than {MAX_DOCUMENT} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise ProviderUnavailable(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{url} did not answer a JSON object")
    return document


def metadata(issuer, now=None):
    """The provider's discovery document (kept for METADATA_TTL)."""
    now = time.monotonic() if now is None else now
    with _lock:
        kept = _metadata.get(issuer)
    if kept is not None and now - kept[0] < METADATA_TTL:
        return kept[1]
    document = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    missing = [name for name in REQUIRED if not isinstance(document.get(name), str) or not document[name]]
    if missing:
        raise ProviderUnavailable("the discovery document lacks " + ", ".join(missing))
    if document["issuer"] != issuer:
        raise ProviderUnavailable(f"the discovery document speaks for issuer {document['issuer']!r}, "
                                  f"not {issuer!r}")
    with _lock:
        _metadata[issuer] = (now, document)
    return document


def forget(issuer=None):
    """Drop what is kept (one issuer, or all): the next use fetches it again."""
    with _lock:
        if issuer is None:
            _metadata.clear()
        else:
            _metadata.pop(issuer, None)
