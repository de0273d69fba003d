"""Secrets the server must read back, sealed at rest: the one module that touches the key.

An identity provider's client secret (and, later, TOTP seeds and signing keys) must be
sent or used again, so a digest will not do. Each is stored sealed with AES-256-GCM under a
key derived (HKDF-SHA256) from `IAM_ENCRYPTION_KEY`, or from `IAM_SECRET_KEY` when that is
unset. A sealed value reads `v1.<key id>.<base64url(nonce || ciphertext || tag)>`:

- the nonce is 96 random bits per value;
- the value's purpose (say `identity_providers.client_secret`) is authenticated with it
  (associated data), so a sealed value copied into another column does not open there;
- the key id (8 hex digits of an HMAC of the key) names the key that sealed it. Keys being
  retired go in `IAM_ENCRYPTION_OLD_KEYS` (comma-separated): values they sealed still open,
  and `flask --app wsgi iam reseal-secrets` seals them again under the current key.

A value that does not open (a wrong or missing key, a tampered value) raises `Unsealable`;
the message never carries the value.
"""
import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

VERSION = "v1"
_INFO = b"iam secrets at rest v1"


class Unsealable(Exception):
    """A sealed value could not be opened: no configured key sealed it, or it was altered."""


def _derive(material):
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material.encode())
    return hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:8], key


def keys(config=None):
    """(current (key id, key), {key id: key} of every key that may open a value)."""
    config = config if config is not None else current_app.config
    material = config.get("IAM_ENCRYPTION_KEY") or config["IAM_SECRET_KEY"]
    current = _derive(material)
    known = dict([current])
    for old in config.get("IAM_ENCRYPTION_OLD_KEYS") or ():
        key_id, key = _derive(old)
        known.setdefault(key_id, key)
    return current, known


def seal(plaintext, purpose, config=None):
    """The sealed form of `plaintext` (a str) for a column of this `purpose`."""
    (key_id, key), _ = keys(config)
    nonce = os.urandom(12)
    box = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), purpose.encode())
    return f"{VERSION}.{key_id}.{base64.urlsafe_b64encode(nonce + box).decode().rstrip('=')}"


def unseal(sealed, purpose, config=None):
    """The plaintext of a value `seal` made for this purpose; Unsealable otherwise."""
    _, known = keys(config)
    try:
        version, key_id, data = sealed.split(".", 2)
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (AttributeError, ValueError):
        raise Unsealable("not a sealed value") from None
    if version != VERSION:
        raise Unsealable(f"unknown sealed-value version {version!r}")
    key = known.get(key_id)
    if key is None:
        raise Unsealable(f"sealed with key {key_id}, which is not configured (IAM_ENCRYPTION_KEY, "
                         "IAM_ENCRYPTION_OLD_KEYS)")
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], purpose.encode()).decode("utf-8")
    except (InvalidTag, ValueError):
        raise Unsealable("the sealed value does not open with its key (altered, or another purpose's)") from None


def is_current(sealed, config=None):
    """Whether this value is sealed under the current key (`reseal-secrets` skips those)."""
    (key_id, _), _ = keys(config)
    return isinstance(sealed, str) and sealed.startswith(f"{VERSION}.{key_id}.")
