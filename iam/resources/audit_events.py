"""audit_events: the append-only trail, read-only through the API."""
from ..jsonapi import Resource
from ..jsonapi.schema import Int, JsonApiSchema, JsonObject, Str, Timestamp
from ..models import AuditEvent


class AuditEventSchema(JsonApiSchema):
    class Meta:
        type_ = "audit_events"

    actor_account_id = Int(dump_only=True)
    action = Str(dump_only=True)
    resource_type = Str(dump_only=True)
    resource_id = Str(dump_only=True)
    organization_id = Int(dump_only=True)
    changes = JsonObject(dump_only=True)
    ip = Str(dump_only=True)
    created_at = Timestamp(dump_only=True)


class AuditEvents(Resource):
    type = "audit_events"
    model = AuditEvent
    schema = AuditEventSchema
    actions = ("list", "show")
