"""Short-lived signed access tokens (JWT, HS256) and API key material.

Decoding names its one allowed algorithm and requires `exp`, `iat`, `sub`, `jti` and our
`typ`, so a token signed with `none`, another algorithm, or meant for another purpose
(refresh, reset, invitation) never passes as an access token.
"""
import secrets
import uuid
from datetime import datetime, timedelta, timezone

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
    """The claims of a valid access token, or InvalidToken."""
    try:
        claims = jwt.decode(
            token, current_app.config["IAM_SECRET_KEY"], algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "jti", "typ", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims.get("typ") != ACCESS:
        raise InvalidToken("not an access token")
    for claim in ("sub", "sid"):
        value = claims.get(claim)
        if not isinstance(value, str) or not value.isdigit() or int(value) >= 2 ** 31:
            raise InvalidToken(f"bad {claim}")
    return claims


def new_api_key():
    """A fresh raw API key: `IAM_` and 43 URL-safe characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)
