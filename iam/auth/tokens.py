"""Short-lived signed access tokens (JWT, HS256) and API key material.

Decoding names its one allowed algorithm and requires `exp`, `iat`, `sub`, `jti` and our
`typ`, so a token signed with `none`, another algorithm, or meant for another purpose
(refresh, reset, invitation) never passes as an access token.
"""
import functools
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import jwt
from flask import current_app

ALGORITHM = "HS256"
ISSUER = "iam"
ACCESS = "access"
API_KEY_PREFIX = "IAM_"


class InvalidToken(Exception):
    pass


def issue_access_token(account_id, session_id, now=None, not_after=None):
    """(token, expires_at) for this account's session; never outlives `not_after`."""
    now = now or datetime.now(timezone.utc)
    expires_at = now + timedelta(seconds=current_app.config["IAM_ACCESS_TOKEN_TTL"])
    if not_after is not None:
        expires_at = min(expires_at, not_after)
    claims = {
        "sub": str(account_id), "sid": str(session_id), "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()), "jti": uuid.uuid4().hex, "typ": ACCESS, "iss": ISSUER,
    }
    token = jwt.encode(claims, current_app.config["IAM_SECRET_KEY"], algorithm=ALGORITHM)
    return token, datetime.fromtimestamp(claims["exp"], timezone.utc)


def decode_access_token(token):
    """The claims of a valid access token, or InvalidToken.

    A token that verified once is not verified again until it expires: a process remembers
    the claims of the last VERIFIED_TOKENS tokens it verified, keyed by the token and the key
    it was verified with, and checks their `exp` on every use. What the claims say never
    changes (they are signed), so nothing that can change is remembered: the session, the
    account and its roles are read on every request all the same (principal.py). A token
    that fails is not remembered, and fails again the same way."""
    if EXTERNAL_VERIFIERS and _signed_by_keys(token):
        claims = EXTERNAL_VERIFIERS[0](token)
    else:
        claims = _verified(token, current_app.config["IAM_SECRET_KEY"])
    if claims["exp"] <= time.time():
        raise InvalidToken("expired")
    return claims


# Verifiers of access tokens signed with the OpenID Provider's published keys (RS256, ES256),
# which iam/oauth/ adds: an application's token for this API. auth/ knows nothing of them but
# that their header names one of these algorithms.
EXTERNAL_VERIFIERS = []
_EXTERNAL_ALGORITHMS = ("RS256", "ES256")


# The header segment of every token issue_access_token makes: the common case costs a prefix test.
_OWN_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."  # {"alg":"HS256","typ":"JWT"}


def _signed_by_keys(token):
    if token.startswith(_OWN_HEADER):
        return False
    try:
        return jwt.get_unverified_header(token).get("alg") in _EXTERNAL_ALGORITHMS
    except jwt.PyJWTError:
        return False


def check_ids(claims):
    """`sub` (the account) and `sid` (the session) are ids a row can have; InvalidToken otherwise."""
    for claim in ("sub", "sid"):
        value = claims.get(claim)
        if not isinstance(value, str) or not value.isdigit() or int(value) >= 2 ** 31:
            raise InvalidToken(f"bad {claim}")


VERIFIED_TOKENS = 4096  # about 1.5 MB per process at most


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(token, secret):
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "jti", "typ", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims.get("typ") != ACCESS:
        raise InvalidToken("not an access token")
    check_ids(claims)
    if not isinstance(claims["exp"], (int, float)):
        raise InvalidToken("bad exp")
    return MappingProxyType(claims)  # shared by every request that presents the token: read-only


def new_api_key():
    """A fresh raw API key: `IAM_` and 43 URL-safe characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)
