"""Signing in with a second factor, enrolment forced by policy, and step-up (contract section 9).

- A correct password for an account with an active TOTP or passkey answers no token but an
  `mfa_token` (256 random bits, stored as its digest, MFA_TOKEN_TTL seconds, single use) and the
  factors to choose from. `POST /auth/mfa {"mfa_token", "code"}` (a TOTP or a recovery code),
  or for a passkey `POST /auth/mfa/challenge {"mfa_token", "factor_id"}` then `POST /auth/mfa
  {"mfa_token", "factor_id", "credential"}`, finishes the sign-in: the session's `amr` is
  `["pwd", "otp"]` or `["pwd", "hwk"]` and its `mfa_at` now.
- The password's attempt stays counted against the account until the second factor is proven
  (so a stolen password cannot try codes without end by logging in again); each wrong code
  counts too, and locks the account like wrong passwords (section 5). An mfa_token dies after
  MAX_FAILURES wrong codes.
- `mfa_required` (on the account's organization, its unit or a unit above it) and no second
  factor: the password answers a session that may only enrol one (`meta.mfa_enrollment_required`;
  principal.py keeps it to that), for ACCESS_TOKEN_TTL, without a refresh token. Verifying a
  factor in it lifts the limit (resources/mfa_factors.py).
- `POST /auth/step_up {"code"}` (or `{"factor_id", "credential"}` after `POST /auth/mfa/challenge
  {"factor_id"}` with the bearer token) proves a second factor in the caller's session again.

API-key logins stay single-step: keys are for scripts, and a key is already a second secret.
"""
import secrets
from datetime import timedelta

from flask import current_app, request
from marshmallow import Schema, fields, validate
from sqlalchemy import delete, select, update

from .. import audit, throttle
from ..auth import second_factor, sessions
from ..auth.second_factor import active_second_factors
from ..auth.principal import authenticate
from ..auth.views import PASSWORD_STEPS, committed_session_document, parse_auth_body
from ..extensions import db
from ..jsonapi import JsonApiError, JsonApiErrors, documents
from ..jsonapi.documents import JSONAPI_OBJECT
from ..jsonapi.errors import invalid_field
from ..jsonapi.media import check_accept
from ..jsonapi.query import QuerySpec
from ..models import (Account, AccountSession, MfaChallenge, MfaFactor, Organization, OrganizationalUnit, Person,
                      utcnow)
from ..models.base import record_activity
from ..resources.common import digest
from . import codes, passkeys

MFA_TOKEN_TTL = 300
MAX_FAILURES = 5


def invalid_code():
    return JsonApiError(401, "invalid_code", "Unauthenticated", "The code or passkey is not accepted.")


def invalid_mfa_token():
    return JsonApiError(401, "invalid_token", "Unauthenticated",
                        "The mfa_token is invalid, used or expired; log in again.")


def mfa_policy_applies(account):
    """Whether `mfa_required` is true on the account's organization, or on its person's unit or a
    unit above it (one read for the organization and the unit, one for the units above)."""
    row = db.session.execute(
        select(Organization.policies, OrganizationalUnit.id, OrganizationalUnit.ancestry)
        .select_from(Account)
        .outerjoin(Organization, Organization.id == Account.organization_id)
        .outerjoin(Person, Person.id == Account.person_id)
        .outerjoin(OrganizationalUnit, OrganizationalUnit.id == Person.organizational_unit_id)
        .where(Account.id == account.id)).first()
    if row is None:
        return False
    org_policies, unit_id, ancestry = row
    if (org_policies or {}).get("mfa_required") is True:
        return True
    if unit_id is None:
        return False
    ids = [int(part) for part in (ancestry or "").strip("/").split("/") if part.isdigit()] + [unit_id]
    return any((policies or {}).get("mfa_required") is True for policies in db.session.scalars(
        select(OrganizationalUnit.policies).where(OrganizationalUnit.id.in_(ids))))


def new_challenge(account, now, first_amr, factors):
    """(the mfa_required meta, its MfaChallenge): a new mfa_token for the second step."""
    # Challenges past their time are of no use: each two-step sign-in sweeps them (indexed).
    db.session.execute(delete(MfaChallenge).where(MfaChallenge.expires_at < now)
                       .execution_options(synchronize_session=False))
    raw = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=MFA_TOKEN_TTL)
    challenge = MfaChallenge(token_digest=digest(raw), account_id=account.id, first_amr=list(first_amr), failures=0,
                             created_at=now, expires_at=expires_at)
    db.session.add(challenge)
    return second_factor.challenge_meta(raw, expires_at, factors), challenge


# RFC 8176 methods that say the identity provider itself checked more than one factor.
REPORTED_MFA = frozenset({"mfa", "otp", "hwk", "swk", "sc", "sms", "tel", "fpt", "face", "iris", "retina", "vbm"})


def sso_step(account, now, reported_amr):
    """After a sign-in through an identity provider (auth/second_factor.py): nothing unless an
    mfa_required policy applies and the provider's `amr` reports no second factor; then the
    second step (the account has a factor) or enrolment (it has none)."""
    if not mfa_policy_applies(account):
        return None
    if isinstance(reported_amr, list) and REPORTED_MFA & {a for a in reported_amr if isinstance(a, str)}:
        return None
    factors = active_second_factors(account.id)
    if not factors:
        return ("enrol",)
    meta, challenge = new_challenge(account, now, ["sso"], factors)
    return ("challenge", meta, challenge)


def password_step(api, account, now):
    """After a correct password: the second step to come, or enrolment, or None (sign in)."""
    factors = active_second_factors(account.id)
    if factors:
        meta, _ = new_challenge(account, now, ["pwd"], factors)
        db.session.commit()
        return {"meta": meta, "jsonapi": JSONAPI_OBJECT}
    if not mfa_policy_applies(account):
        return None
    record_activity(db.session, account, now, failed_login_count=0, locked_until=None, last_login_at=now)
    session = sessions.open_session(account, now, lifetime=current_app.config["IAM_ACCESS_TOKEN_TTL"],
                                    enrollment_only=True)
    audit.record("login", actor_id=account.id, resource_type="account_sessions", resource_id=session.id,
                 organization_id=account.organization_id, changes={"enrollment_only": True})
    document = committed_session_document(api, session, now)
    document["meta"]["mfa_enrollment_required"] = True
    return document


class MfaSchema(Schema):
    mfa_token = fields.String(required=True, validate=validate.Length(min=1, max=256))
    code = fields.String(validate=validate.Length(min=1, max=64))
    factor_id = fields.String(validate=validate.Regexp(r"^[0-9]{1,10}$"))
    credential = fields.Dict()


class StepUpSchema(Schema):
    code = fields.String(validate=validate.Length(min=1, max=64))
    factor_id = fields.String(validate=validate.Regexp(r"^[0-9]{1,10}$"))
    credential = fields.Dict()


class ChallengeSchema(Schema):
    mfa_token = fields.String(validate=validate.Length(min=1, max=256))
    factor_id = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{1,10}$"))


class Wrong(Exception):
    """The code or passkey is refused; the message says why (for the audit trail)."""


def _pointer(name):
    return f"/data/attributes/{name}" if getattr(request, "_iam_wrapped", False) else f"/{name}"


def _passkey(account_id, factor_id):
    factor = db.session.get(MfaFactor, int(factor_id)) if factor_id and int(factor_id) < 2 ** 31 else None
    if factor is None or factor.account_id != account_id or factor.kind != "webauthn" or factor.status != "active":
        return None
    return factor


def prove(account_id, args, challenge, now):
    """(the amr value proven, the factor used) for the code or passkey in `args`; Wrong otherwise.
    `challenge`: the MfaChallenge holding a passkey's challenge."""
    if args.get("credential") is not None:
        if not args.get("factor_id"):
            raise JsonApiErrors([invalid_field(_pointer("factor_id"), "factor_id goes with credential.",
                                               code="required")])
        factor = _passkey(account_id, args["factor_id"])
        if factor is None:
            raise Wrong("no active passkey of the account has this id")
        if challenge is None or challenge.webauthn_challenge is None or challenge.factor_id != factor.id:
            raise Wrong("no challenge was asked for this passkey (POST /auth/mfa/challenge)")
        try:
            passkeys.authenticate(factor, args["credential"], challenge.webauthn_challenge, now)
        except passkeys.Refused as refused:
            raise Wrong(str(refused)) from None
        return "hwk", factor
    if not args.get("code"):
        raise JsonApiErrors([invalid_field(_pointer("code"), "code (or factor_id and credential) is required.",
                                           code="required")])
    for factor in active_second_factors(account_id):
        if factor.kind != "totp":
            continue
        step = codes.totp_step(factor, args["code"], now.timestamp())
        if step is not None:
            if not codes.claim_totp_step(factor.id, step, now):
                raise Wrong("the code was used already")
            return "otp", factor
    factor_id = codes.use_recovery_code(account_id, args["code"], now)
    if factor_id is not None:
        return "otp", db.session.get(MfaFactor, factor_id)
    raise Wrong("the code is wrong")


def _refused(account, wrong, now, challenge=None):
    """Count a wrong code against the account (and the mfa_token), audit it, answer 401."""
    db.session.rollback()
    if challenge is not None:
        db.session.execute(update(MfaChallenge).where(MfaChallenge.id == challenge.id)
                           .values(failures=MfaChallenge.failures + 1).execution_options(synchronize_session=False))
    audit.record("mfa_failed", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                 organization_id=account.organization_id, changes={"reason": str(wrong)})
    if throttle.lock_if_exhausted(account.id, now):
        audit.record("lock", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                     organization_id=account.organization_id)
    db.session.commit()
    return invalid_code()


def _locked(account, now):
    """The attempts are used up (the password's own may have used the last one): no code is
    checked, and the lock starts now if it has not (so that it also ends)."""
    if throttle.lock_if_exhausted(account.id, now):
        audit.record("lock", actor_id=account.id, resource_type="accounts", resource_id=account.id,
                     organization_id=account.organization_id)
    db.session.commit()
    return invalid_code()


def pending(raw, now):
    """The live MfaChallenge of this mfa_token, else None (the sign-in pages ask too)."""
    challenge = db.session.scalars(select(MfaChallenge).where(MfaChallenge.token_digest == digest(raw))).one_or_none()
    if challenge is None or challenge.used_at is not None or challenge.expires_at <= now \
            or challenge.failures >= MAX_FAILURES:
        return None
    return challenge


def finish(api):
    """POST /auth/mfa: the second step of a sign-in."""
    check_accept()
    args = parse_auth_body(MfaSchema)
    now = utcnow()
    session = complete(args["mfa_token"], args, now)
    return committed_session_document(api, session, now, sessions.new_refresh_token(session))


def complete(mfa_token, args, now):
    """The session a correct second factor (`args`: code, or factor_id and credential) opens
    for this mfa_token, not yet committed; a JsonApiError (committed where it counts a failure)
    otherwise. POST /auth/mfa and the sign-in pages (iam/web/) both finish here."""
    challenge = pending(mfa_token, now)
    account = db.session.get(Account, challenge.account_id) if challenge is not None else None
    if account is None or not account.is_active(now):
        raise invalid_mfa_token()
    if not throttle.claim_login_attempt(account.id, now):
        raise _locked(account, now)
    try:
        amr, factor = prove(account.id, args, challenge, now)
    except Wrong as wrong:
        raise _refused(account, wrong, now, challenge) from None
    claimed = db.session.execute(
        update(MfaChallenge).where(MfaChallenge.id == challenge.id, MfaChallenge.used_at.is_(None),
                                   MfaChallenge.failures < MAX_FAILURES)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    if not claimed:  # a parallel request used the token meanwhile
        db.session.rollback()
        raise invalid_mfa_token()
    record_activity(db.session, account, now, failed_login_count=0, locked_until=None, last_login_at=now)
    session = sessions.open_session(account, now, amr=[*challenge.first_amr, amr])
    audit.record("mfa_used", actor_id=account.id, resource_type="mfa_factors", resource_id=factor.id,
                 organization_id=account.organization_id, changes={"kind": factor.kind})
    audit.record("login", actor_id=account.id, resource_type="account_sessions", resource_id=session.id,
                 organization_id=account.organization_id)
    return session


def challenge(api):
    """POST /auth/mfa/challenge: a passkey's request options, for a sign-in (mfa_token) or a
    step-up (the bearer token)."""
    check_accept()
    args = parse_auth_body(ChallengeSchema)
    now = utcnow()
    if args.get("mfa_token"):
        waiting = pending(args["mfa_token"], now)
        if waiting is None:
            raise invalid_mfa_token()
        account_id = waiting.account_id
    else:
        principal = authenticate()
        account_id = principal.account_id
        waiting = MfaChallenge(account_id=account_id, session_id=principal.session_id, first_amr=[], failures=0,
                               created_at=now, expires_at=now + timedelta(seconds=MFA_TOKEN_TTL))
        db.session.add(waiting)
    options = passkey_options(waiting, account_id, args["factor_id"])
    if options is None:
        raise JsonApiErrors([invalid_field(_pointer("factor_id"), "No active passkey of this account has this id.",
                                           code="not_found")])
    db.session.commit()
    return {"meta": {"options": options}, "jsonapi": JSONAPI_OBJECT}


def passkey_options(challenge, account_id, factor_id):
    """A passkey's request options for `challenge` (its WebAuthn challenge kept there, not
    committed), or None when the account has no active passkey with this id."""
    factor = _passkey(account_id, factor_id)
    if factor is None:
        return None
    options, value = passkeys.authentication_options(factor)
    challenge.webauthn_challenge, challenge.factor_id = value, factor.id
    return options


def step_up(api):
    """POST /auth/step_up: prove a second factor in the caller's session again."""
    check_accept()
    principal = authenticate()
    args = parse_auth_body(StepUpSchema)
    now = utcnow()
    account = db.session.get(Account, principal.account_id)
    if account is None or not account.mfa_enabled:
        raise JsonApiError(409, "no_second_factor", "Conflict",
                           "This account has no active second factor to prove; enrol one (POST /mfa_factors).")
    if not throttle.claim_login_attempt(account.id, now):
        raise _locked(account, now)
    waiting = None
    if args.get("credential") is not None:
        waiting = db.session.scalars(select(MfaChallenge).where(
            MfaChallenge.session_id == principal.session_id, MfaChallenge.used_at.is_(None),
            MfaChallenge.expires_at > now, MfaChallenge.failures < MAX_FAILURES)
            .order_by(MfaChallenge.id.desc()).limit(1)).first()
    try:
        amr, factor = prove(account.id, args, waiting, now)
    except Wrong as wrong:
        raise _refused(account, wrong, now, waiting) from None
    if waiting is not None:
        db.session.execute(update(MfaChallenge).where(MfaChallenge.id == waiting.id).values(used_at=now)
                           .execution_options(synchronize_session=False))
    record_activity(db.session, account, now, failed_login_count=0, locked_until=None)
    session = db.session.get(AccountSession, principal.session_id)
    sessions.prove_second_factor(session, now, amr, auth_time=now)
    audit.record("step_up", actor_id=account.id, resource_type="account_sessions", resource_id=session.id,
                 organization_id=account.organization_id, changes={"kind": factor.kind})
    db.session.flush()
    db.session.expire(session)
    ctx = api.context(principal=None, authenticate=False)
    document = documents.single_document(api.resource("account_sessions"), session, QuerySpec(), ctx)
    db.session.commit()
    return document


def register(api):
    PASSWORD_STEPS.append(password_step)
    second_factor.STEP = sso_step

    def auth_mfa():
        return finish(api)

    def auth_mfa_challenge():
        return challenge(api)

    def auth_step_up():
        return step_up(api)

    for path, view in (("/auth/mfa", auth_mfa), ("/auth/mfa/challenge", auth_mfa_challenge),
                       ("/auth/step_up", auth_step_up)):
        api.blueprint.add_url_rule(path, view.__name__, view, methods=["POST"])
