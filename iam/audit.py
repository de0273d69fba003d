"""The audit trail: one append-only row per security-relevant event."""
from flask import has_request_context, request

from .extensions import db
from .models import AuditEvent

# Never written into an event, whatever the change contained.
SECRET_KEYS = frozenset({
    "password", "current_password", "new_password", "password_hash", "password_reset_token",
    "password_reset_token_digest", "email_change_token_digest", "token", "refresh_token", "token_digest", "key", "api_key", "key_digest",
    "client_secret", "client_secret_sealed", "code_verifier", "code_verifier_sealed", "sso_code", "code",
})
REDACTED = "[redacted]"


def redact(value):
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def record_change(ctx, resource, action, obj, before, after):
    """The engine's on_change hook: every create, update and delete through the API."""
    organization_id = getattr(obj, "organization_id", None)
    if organization_id is None and getattr(obj, "account", None) is not None:
        organization_id = obj.account.organization_id
    record(getattr(resource, "audit_actions", {}).get(action, action),
           actor_id=ctx.principal.account_id if ctx.principal else None, resource_type=resource.type,
           resource_id=obj.id, organization_id=organization_id,
           changes={"before": before, "after": after})


def record(action, *, actor_id=None, resource_type=None, resource_id=None, organization_id=None, changes=None,
           ip=None):
    """Add an event to the current transaction (the caller commits it with its change)."""
    if ip is None and has_request_context():
        ip = request.remote_addr
    event = AuditEvent(
        actor_account_id=actor_id, action=action, resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id), organization_id=organization_id,
        changes=redact(changes or {}), ip=ip,
    )
    db.session.add(event)
    return event
