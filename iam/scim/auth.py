"""Who calls /scim/v2: `Authorization: Bearer <API key>` of a key with `{"scim": true}` (contract
section 11). The key acts on its account's organization, only here (POST /auth/api/login refuses
it), while the key is usable and its account may sign in. Every answer of a refused key is the
same 401."""
from dataclasses import dataclass

from sqlalchemy import select

from flask import request

from ..extensions import db
from ..models import ApiKey, utcnow
from ..models.base import record_activity
from ..resources.common import digest
from .errors import ScimError


@dataclass(frozen=True)
class Caller:
    key_id: int
    account_id: int
    organization_id: int


def refused():
    return ScimError(401, "Send Authorization: Bearer <API key> of a key made with scopes {\"scim\": true}.",
                     headers={"WWW-Authenticate": 'Bearer realm="scim"'})


def authenticate():
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw or len(raw) > 256:
        raise refused()
    now = utcnow()
    key = db.session.scalars(select(ApiKey).where(ApiKey.key_digest == digest(raw))).one_or_none()
    if key is None or not key.scopes.get("scim") or not key.is_usable(now) or not key.account.is_active(now) \
            or key.account.organization_id is None:
        raise refused()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        record_activity(db.session, key, now, last_used_at=now)  # bookkeeping, at most once a minute
    return Caller(key.id, key.account_id, key.account.organization_id)
