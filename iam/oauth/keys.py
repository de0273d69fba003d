"""The keys the server signs application tokens with: one RS256 and one ES256 key at a time, made
by the server (joserfc), their private parts sealed (secret_store.py, purpose PURPOSE), their
public parts published at `/oauth2/jwks` with their `kid` (the RFC 7638 thumbprint).

`rotate()` (`flask --app wsgi iam rotate-signing-key`) makes a new key of each algorithm; the
old ones sign no more but stay published until every token they could have signed has expired
(`published_until`: the longest token lifetime after the rotation), so tokens in flight keep
verifying. Keys are made at first use when none exist: two processes doing so at once make two
keys, both published, the newer signing.
"""
import json
import threading
from datetime import timedelta

from flask import current_app
from joserfc.jwk import ECKey, RSAKey, import_key
from sqlalchemy import or_, select

from .. import secret_store
from ..extensions import db
from ..models import SIGNING_ALGORITHMS, SigningKey

PURPOSE = "signing_keys.private"
LEEWAY = timedelta(seconds=60)

_lock = threading.Lock()
_private = {}  # kid -> joserfc key (unsealed once per process)


def _generate(alg, now):
    key = RSAKey.generate_key(2048, private=True) if alg == "RS256" else ECKey.generate_key("P-256", private=True)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    row = SigningKey(kid=kid, alg=alg, private_sealed=secret_store.seal(json.dumps(key.as_dict(private=True)), PURPOSE),
                     public_jwk=public, created_at=now)
    db.session.add(row)
    return row


def longest_token_lifetime():
    return timedelta(seconds=current_app.config["IAM_ACCESS_TOKEN_TTL"]) + LEEWAY


def current(alg, now):
    """The key that signs now for `alg` (made if there is none); the caller commits."""
    row = db.session.scalars(select(SigningKey).where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
                             .order_by(SigningKey.id.desc()).limit(1)).first()
    return row or _generate(alg, now)


def rotate(now):
    """A new key of each algorithm; the old ones stop signing and stay published for the
    lifetime of what they signed. The new keys, committed."""
    until = now + longest_token_lifetime()
    for row in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at, row.published_until = now, until
    made = [_generate(alg, now) for alg in SIGNING_ALGORITHMS]
    db.session.commit()
    return made


def private_key(row):
    with _lock:
        key = _private.get(row.kid)
    if key is None:
        key = import_key(json.loads(secret_store.unseal(row.private_sealed, PURPOSE)))
        with _lock:
            _private[row.kid] = key
    return key


def published(now):
    """The keys in the JWKS: those that sign, and retired ones whose tokens may still be alive."""
    return db.session.scalars(select(SigningKey).where(
        or_(SigningKey.retired_at.is_(None), SigningKey.published_until > now)).order_by(SigningKey.id)).all()


def jwks(now):
    return {"keys": [dict(row.public_jwk) for row in published(now)]}


def verification_key(kid, now):
    """The public key of a published key with this kid, or None."""
    row = db.session.scalars(select(SigningKey).where(
        SigningKey.kid == kid, or_(SigningKey.retired_at.is_(None), SigningKey.published_until > now))).first()
    return (row.alg, import_key(dict(row.public_jwk))) if row is not None else None
