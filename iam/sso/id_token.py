"""An identity provider's ID token, validated (OpenID Connect Core 1.0 section 3.1.3.7), with joserfc.

- The signature: an asymmetric algorithm of ALGORITHMS only (never `none`, never an HMAC,
  which would make the client secret a signing key), and, when the provider's discovery
  document lists `id_token_signing_alg_values_supported`, one of those too. The key is the
  provider's, from its `jwks_uri`: kept for JWKS_TTL seconds, fetched again when a token names
  a `kid` the kept set lacks (a provider rotating its keys), but at most once every
  REFETCH_INTERVAL seconds per key set, so forged tokens with random kids cannot make this
  server hammer the provider.
- The claims: `iss` exactly the provider's issuer (or a form ISSUER_ALIASES lists), `aud` containing the client id (and `azp`
  the client id when present or when `aud` names others), `exp` in the future and `iat` in the
  past (LEEWAY seconds of clock skew either way), `sub` present, `nonce` the one stored at the
  start.

Every refusal is an InvalidIdToken whose message says which check failed: it goes to the log
and the audit trail, never to the browser (which gets the one `sso_failed` answer).
"""
import hmac
import threading
import time

from joserfc import jws, jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from .provider import ProviderUnavailable, fetch_json

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
LEEWAY = 60
JWKS_TTL = 3600
REFETCH_INTERVAL = 60
MAX_TOKEN = 16 * 1024  # an ID token larger than this is refused before it is parsed
# Issuers whose tokens may name them another way: Google documents that its ID tokens' `iss` is
# `https://accounts.google.com` or `accounts.google.com`.
ISSUER_ALIASES = {"https://accounts.google.com": ("accounts.google.com",)}

_lock = threading.Lock()
_key_sets = {}  # jwks_uri -> (fetched at, KeySet)


class InvalidIdToken(Exception):
    """The ID token is not one this server accepts; the message says why (for the log)."""


def _fetch_key_set(jwks_uri, now):
    document = fetch_json(jwks_uri)
    try:
        key_set = KeySet.import_key_set(document)
    except (JoseError, KeyError, TypeError, ValueError) as error:
        raise ProviderUnavailable(f"{jwks_uri} is not a usable JWK set ({type(error).__name__})") from None
    with _lock:
        _key_sets[jwks_uri] = (now, key_set)
    return key_set


def _key_set(jwks_uri, now):
    with _lock:
        kept = _key_sets.get(jwks_uri)
    if kept is not None and now - kept[0] < JWKS_TTL:
        return kept[1], kept[0]
    return _fetch_key_set(jwks_uri, now), now


def _candidates(key_set, alg, kid):
    kty = KEY_TYPES[alg[:2]]
    keys = [key for key in key_set if key.key_type == kty and key.get("use") in (None, "sig")
            and key.get("alg") in (None, alg)]
    return [key for key in keys if key.kid == kid] if kid is not None else keys


def _claim_refetch(jwks_uri, now):
    """Whether this request may fetch the key set again: the first one past REFETCH_INTERVAL
    claims it (under the lock), so parallel tokens with unknown kids make one fetch, not many."""
    with _lock:
        kept = _key_sets.get(jwks_uri)
        if kept is None or now - kept[0] < REFETCH_INTERVAL:
            return False
        _key_sets[jwks_uri] = (now, kept[1])
        return True


def _keys_for(jwks_uri, alg, kid, now):
    """The provider's keys that may have signed this token; fetched again for an unknown kid."""
    key_set, _ = _key_set(jwks_uri, now)
    keys = _candidates(key_set, alg, kid)
    if not keys and _claim_refetch(jwks_uri, now):
        keys = _candidates(_fetch_key_set(jwks_uri, now), alg, kid)
    if not keys:
        raise InvalidIdToken(f"signed by a key the provider does not publish (kid {kid!r}, {alg})")
    return keys


def _header(id_token):
    if not isinstance(id_token, str) or not id_token or len(id_token) > MAX_TOKEN:
        raise InvalidIdToken("the token answer carries no usable id_token")
    if id_token.count(".") != 2:
        raise InvalidIdToken("the id_token is not a compact JWS (an encrypted or malformed token)")
    try:
        return jws.extract_compact(id_token.encode()).protected
    except (JoseError, ValueError, TypeError):
        raise InvalidIdToken("the id_token's header cannot be read") from None


def validate(id_token, *, issuer, client_id, nonce, jwks_uri, advertised=None, now=None):
    """The ID token's claims once every check passed; InvalidIdToken (or ProviderUnavailable,
    when the key set cannot be had) otherwise."""
    header = _header(id_token)
    alg = header.get("alg")
    allowed = [a for a in ALGORITHMS if not advertised or a in advertised]
    if alg not in allowed:
        raise InvalidIdToken(f"signed with algorithm {alg!r}, not one of {', '.join(allowed)}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidIdToken("the id_token's kid is not a string")
    clock = time.monotonic() if now is None else now
    token = None
    for key in _keys_for(jwks_uri, alg, kid, clock):
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
            break
        except JoseError:
            continue
    if token is None:
        raise InvalidIdToken("the id_token's signature does not verify with the provider's keys")
    claims = token.claims
    issuers = [issuer, *ISSUER_ALIASES.get(issuer, ())]
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY, iss={"essential": True, "values": issuers}, aud={"essential": True, "value": client_id},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True}, nonce={"essential": True})
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise InvalidIdToken("the id_token has expired") from None
    except ClaimError as error:
        raise InvalidIdToken(f"the id_token's claims are refused ({error.description or error.error})") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if ("azp" in claims or len(audiences) > 1) and claims.get("azp") != client_id:
        raise InvalidIdToken("the id_token was issued to another party (azp)")
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
        raise InvalidIdToken("the id_token's sub is not a string of at most 255 characters")
    if not isinstance(claims["nonce"], str) or not hmac.compare_digest(claims["nonce"].encode(), nonce.encode()):
        raise InvalidIdToken("the id_token's nonce is not this sign-in's")
    return claims


def forget():
    """Drop every kept key set (tests; a provider known to have rotated)."""
    with _lock:
        _key_sets.clear()
