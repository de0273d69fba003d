"""Where a sign-in through an identity provider may still need a second factor (contract section
9: "an SSO sign-in whose provider reports no MFA, when a policy requires it"). iam/mfa/ sets
STEP; iam/sso/ asks `after_sso`, so neither imports the other.

STEP(account, now, reported_amr) answers None (sign in), ("enrol",) (a session that may only
enrol a factor) or ("challenge", meta, challenge) (the mfa_required answer and its MfaChallenge,
not yet committed)."""
from sqlalchemy import select

from ..extensions import db
from ..models import SECOND_FACTORS, MfaFactor

STEP = None


def active_second_factors(account_id):
    """The account's active authenticator apps and passkeys (recovery codes stand in for them only)."""
    return db.session.scalars(select(MfaFactor).where(
        MfaFactor.account_id == account_id, MfaFactor.status == "active", MfaFactor.kind.in_(SECOND_FACTORS))
        .order_by(MfaFactor.id)).all()


def after_sso(account, now, reported_amr):
    return STEP(account, now, reported_amr) if STEP is not None else None


def challenge_meta(raw, expires_at, factors):
    """The `meta` of an answer that asks for the second step: the mfa_token and the factors."""
    return {"mfa_required": True, "mfa_token": raw, "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "factors": [{"id": str(f.id), "kind": f.kind, "name": f.name} for f in factors]}
