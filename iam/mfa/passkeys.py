"""Passkeys: the WebAuthn ceremonies, with the `webauthn` package (py_webauthn).

The relying party is this server: its id is IAM_ISSUER's host, its origin IAM_ISSUER's
scheme, host and port. A registration (`POST /mfa_factors {"kind": "webauthn"}`) answers the
PublicKeyCredentialCreationOptions and keeps their challenge on the pending factor for
CHALLENGE_TTL seconds; `/verify` checks the browser's attestation (challenge, origin, rp id,
user presence) and stores the credential id, public key and sign counter. An authentication
keeps its challenge on the mfa_challenges row; the assertion's signature is checked with the
stored key, and a sign counter that does not grow (a cloned authenticator) is refused, as the
stored counter is replaced by one conditional UPDATE.
"""
import json
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, update
from webauthn import (generate_authentication_options, generate_registration_options, options_to_json,
                      verify_authentication_response, verify_registration_response)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (AuthenticatorSelectionCriteria, PublicKeyCredentialDescriptor,
                                      ResidentKeyRequirement, UserVerificationRequirement)

from ..extensions import db
from ..models import MfaFactor

CHALLENGE_TTL = 300


class Refused(Exception):
    """The browser's response is not one this server accepts (the message says why)."""


def relying_party():
    """(rp id, origin) from IAM_ISSUER."""
    parts = urlsplit(current_app.config["IAM_ISSUER"])
    return parts.hostname, f"{parts.scheme}://{parts.netloc}"


def registration_options(factor, account, existing):
    """The creation options (as a JSON-ready dict); the challenge is kept on the factor."""
    rp_id, _ = relying_party()
    options = generate_registration_options(
        rp_id=rp_id, rp_name="IAM", user_id=str(account.id).encode(), user_name=account.email,
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(f.credential_id))
                             for f in existing if f.credential_id],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED),
        timeout=CHALLENGE_TTL * 1000)
    factor.challenge = bytes_to_base64url(options.challenge)
    return json.loads(options_to_json(options))


def challenge_expiry(now):
    return now + timedelta(seconds=CHALLENGE_TTL)


def register(factor, credential, now):
    """Check the attestation against the factor's pending challenge; store the credential."""
    if factor.challenge is None or factor.challenge_expires_at is None or factor.challenge_expires_at <= now:
        raise Refused("the registration's challenge has expired; create the passkey again")
    rp_id, origin = relying_party()
    try:
        verified = verify_registration_response(credential=credential, expected_challenge=base64url_to_bytes(
            factor.challenge), expected_rp_id=rp_id, expected_origin=origin)
    except (InvalidRegistrationResponse, ValueError, TypeError, KeyError) as error:
        raise Refused(f"the attestation is refused: {error}") from None
    factor.credential_id = bytes_to_base64url(verified.credential_id)
    factor.public_key = bytes_to_base64url(verified.credential_public_key)
    factor.sign_count = verified.sign_count
    transports = credential.get("response", {}).get("transports") if isinstance(credential, dict) else None
    factor.transports = [t for t in transports if isinstance(t, str)][:8] if isinstance(transports, list) else None
    factor.challenge = factor.challenge_expires_at = None


def authentication_options(factor):
    """(request options as a JSON-ready dict, their challenge as base64url)."""
    rp_id, _ = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id, allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(factor.credential_id))],
        user_verification=UserVerificationRequirement.PREFERRED, timeout=CHALLENGE_TTL * 1000)
    return json.loads(options_to_json(options)), bytes_to_base64url(options.challenge)


def authenticate(factor, credential, challenge, now):
    """Check an assertion of this factor's credential against `challenge`; the new counter is
    stored. Refused otherwise (a wrong challenge, origin or signature, a counter that did not grow)."""
    rp_id, origin = relying_party()
    if not isinstance(credential, dict) or credential.get("id") != factor.credential_id:
        raise Refused("the assertion is for another credential")
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=base64url_to_bytes(challenge), expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=base64url_to_bytes(factor.public_key),
            credential_current_sign_count=factor.sign_count or 0)
    except (InvalidAuthenticationResponse, ValueError, TypeError, KeyError) as error:
        raise Refused(f"the assertion is refused: {error}") from None
    new_count = verified.new_sign_count
    # Counters that grow must keep growing; one that stays 0 is an authenticator without one.
    grows = MfaFactor.sign_count == 0 if new_count == 0 else MfaFactor.sign_count < new_count
    claimed = db.session.execute(
        update(MfaFactor).where(MfaFactor.id == factor.id, or_(MfaFactor.sign_count.is_(None), grows))
        .values(sign_count=new_count, last_used_at=now, updated_at=now, version=MfaFactor.version + 1)
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise Refused("the authenticator's sign counter did not grow (a cloned authenticator, or a replay)")
