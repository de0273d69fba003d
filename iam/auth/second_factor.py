"""Where a sign-in through an identity provider may still need a second factor (contract section
9: "an SSO sign-in whose provider reports no MFA, when a policy requires it"). iam/mfa/ sets
STEP; iam/sso/ asks `after_sso`, so neither imports the other.

STEP(account, now, reported_amr) answers None (sign in), ("enrol",) (a session that may only
enrol a factor) or ("challenge", meta, challenge) (the mfa_required answer and its MfaChallenge,
not yet committed)."""
STEP = None


def after_sso(account, now, reported_amr):
    return STEP(account, now, reported_amr) if STEP is not None else None


def challenge_meta(raw, expires_at, factors):
    """The `meta` of an answer that asks for the second step: the mfa_token and the factors."""
    return {"mfa_required": True, "mfa_token": raw, "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "factors": [{"id": str(f.id), "kind": f.kind, "name": f.name} for f in factors]}
