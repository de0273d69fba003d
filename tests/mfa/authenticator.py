"""A software authenticator for the passkey tests: it makes real WebAuthn registration
(attestation "none") and authentication responses, signed with its own P-256 key, as a
browser with a platform authenticator would hand them to the page (the JSON form, base64url).

It follows WebAuthn Level 3: authenticator data is the SHA-256 of the rp id, the flags (user
present, user verified, attested credential data), the 32-bit sign counter and, on
registration, the AAGUID, the credential id and the COSE public key; an assertion's signature
is ECDSA over the authenticator data and the SHA-256 of the client data. The server checks
all of it with the `webauthn` package; this side shares no code with it."""
import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data):
    return urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text):
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle = None

    def _cose_key(self):
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def _client_data(kind, challenge, origin):
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options, origin, challenge=None):
        """The registration response for PublicKeyCredentialCreationOptions (as the server's JSON)."""
        rp_id = options["rp"]["id"]
        self.user_handle = options["user"]["id"]
        client_data = self._client_data("webauthn.create", challenge or options["challenge"], origin)
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([UP | UV | AT]) + struct.pack(">I", self.sign_count)
                     + b"\0" * 16 + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                             "transports": ["internal"]},
                "clientExtensionResults": {}}

    def get(self, options, origin, challenge=None, rp_id=None, count=True):
        """The authentication response for PublicKeyCredentialRequestOptions; the counter grows
        unless `count` is False."""
        if count:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        auth_data = (hashlib.sha256((rp_id or options["rpId"]).encode()).digest() + bytes([UP | UV])
                     + struct.pack(">I", self.sign_count))
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature), "userHandle": self.user_handle},
                "clientExtensionResults": {}}

    def clone(self):
        """Another authenticator holding the same key and counter (what a cloned one would be)."""
        twin = SoftAuthenticator.__new__(SoftAuthenticator)
        twin.key, twin.credential_id, twin.sign_count, twin.user_handle = (
            self.key, self.credential_id, self.sign_count, self.user_handle)
        return twin
