"""Who calls /scim/v2: `Authorization: Bearer <API key>` of a key with `{"scim": true}` (contract
section 11). The key acts on its account's organization, only here (POST /auth/api/login refuses
it), while the key is usable and its account may sign in. Every answer of a refused key is the
same 401. Refusals count per client address (iam/throttle.py): past IAM_SCIM_AUTH_RATE_LIMIT of
them the address gets a 429 with Retry-After, before any key is looked up."""
from dataclasses import dataclass

from sqlalchemy import select

from flask import request

from ..extensions import db
from ..models import ApiKey, utcnow
from ..models.base import record_activity
from ..resources.common import digest
from ..throttle import count_scim_refusal, scim_refusals_exceeded
from .errors import ScimError


@dataclass(frozen=True)
class Caller:
    key_id: int
    account_id: int
    organization_id: int


def refused():
    return ScimError(401, "Send Authorization: Bearer <API key> of a key made with scopes {\"scim\": true}.",
                     headers={"WWW-Authenticate": 'Bearer realm="scim"'})


def too_many(retry_after):
    return ScimError(429, "Too many refused authentications from this address; retry after Retry-After seconds.",
                     headers={"Retry-After": str(retry_after)})


def authenticate():
    """The caller; a 401 (counted against the client address) for a refused key, a 429 for an
    address past its limit of refusals."""
    retry_after = scim_refusals_exceeded()
    if retry_after:
        raise too_many(retry_after)
    caller = _caller()
    if caller is None:
        count_scim_refusal()
        raise refused()
    return caller


def _caller():
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw or len(raw) > 256:
        return None
    now = utcnow()
    key = db.session.scalars(select(ApiKey).where(ApiKey.key_digest == digest(raw))).one_or_none()
    if key is None or not key.scopes.get("scim") or not key.is_usable(now) or not key.account.is_active(now) \
            or key.account.organization_id is None:
        return None
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        record_activity(db.session, key, now, last_used_at=now)  # bookkeeping, at most once a minute
    return Caller(key.id, key.account_id, key.account.organization_id)
