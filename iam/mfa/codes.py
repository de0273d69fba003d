"""One-time codes: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps) and recovery codes.

A TOTP code is accepted for the current step or one step either side (clock drift), and only
for a step newer than the last one accepted for that factor: the acceptance is one
conditional UPDATE of `last_used_step`, so a code cannot be used twice, not even by two
requests at once. Seeds are 160 random bits, sealed (secret_store.py) under MFA_SECRET_PURPOSE.

Recovery codes are ten random 10-character codes (50 bits each) from an alphabet without
look-alike characters, shown once, stored as SHA-256 digests (high-entropy random values, as
the refresh tokens are), and each used once by a conditional UPDATE of `used_at`.
"""
import hmac
import secrets
import time

import pyotp
from sqlalchemy import or_, select, update

from .. import secret_store
from ..extensions import db
from ..models import MfaFactor, MfaRecoveryCode
from ..resources.common import digest

MFA_SECRET_PURPOSE = "mfa_factors.secret"
STEP = 30
DRIFT = 1
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no i, l, o, 0, 1


def new_totp_secret():
    return pyotp.random_base32(32)  # 32 base32 characters: 160 bits


def otpauth_uri(secret, account_email, issuer_name):
    return pyotp.TOTP(secret).provisioning_uri(name=account_email, issuer_name=issuer_name)


def _normal(code):
    return "".join(code.split()).replace("-", "").lower() if isinstance(code, str) else ""


def totp_step(factor, code, now=None):
    """The time step `code` belongs to for this factor (current, or one either side), else None.
    It says nothing about whether the step was used already: claim_totp_step does."""
    code = _normal(code)
    if len(code) != 6 or not code.isdigit() or factor.secret_sealed is None:
        return None
    totp = pyotp.TOTP(secret_store.unseal(factor.secret_sealed, MFA_SECRET_PURPOSE))
    current = int((time.time() if now is None else now) // STEP)
    found = None
    for step in range(current - DRIFT, current + DRIFT + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            found = step  # every candidate is compared: the time does not tell which matched
    return found


def claim_totp_step(factor_id, step, now):
    """Accept `step` for the factor once: True unless it (or a newer one) was accepted already."""
    return bool(db.session.execute(
        update(MfaFactor).where(MfaFactor.id == factor_id, or_(MfaFactor.last_used_step.is_(None),
                                                               MfaFactor.last_used_step < step))
        .values(last_used_step=step, last_used_at=now, updated_at=now, version=MfaFactor.version + 1)
        .execution_options(synchronize_session=False)).rowcount)


def new_recovery_codes():
    """(the codes to show once, their digests to store)."""
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    shown = [f"{code[:5]}-{code[5:]}" for code in codes]
    return shown, [digest(code) for code in codes]


def use_recovery_code(account_id, code, now):
    """The recovery-code factor whose unused code this is (marked used now), else None."""
    code = _normal(code)
    if len(code) != 10:
        return None
    row = db.session.execute(
        select(MfaRecoveryCode.id, MfaRecoveryCode.factor_id).join(MfaFactor, MfaFactor.id == MfaRecoveryCode.factor_id)
        .where(MfaRecoveryCode.code_digest == digest(code), MfaRecoveryCode.used_at.is_(None),
               MfaFactor.account_id == account_id, MfaFactor.status == "active")).first()
    if row is None:
        return None
    claimed = db.session.execute(
        update(MfaRecoveryCode).where(MfaRecoveryCode.id == row.id, MfaRecoveryCode.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        return None
    db.session.execute(update(MfaFactor).where(MfaFactor.id == row.factor_id)
                       .values(last_used_at=now, updated_at=now, version=MfaFactor.version + 1)
                       .execution_options(synchronize_session=False))
    return row.factor_id


def seal_secret(secret):
    return secret_store.seal(secret, MFA_SECRET_PURPOSE)
