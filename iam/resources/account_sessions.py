"""account_sessions: one per login; ending one stops its tokens on the next request."""
from marshmallow import fields as ma_fields, validate

from ..auth import sessions
from ..jsonapi import Resource
from ..jsonapi import filters as ft
from ..jsonapi.schema import Bool, Int, JsonApiSchema, Rel, Str, Timestamp
from ..models import SESSION_STATUSES, AccountSession


class AccountSessionSchema(JsonApiSchema):
    class Meta:
        type_ = "account_sessions"

    account_id = Int(dump_only=True)
    user_agent = Str(dump_only=True)
    ip = Str(dump_only=True)
    read_only = Bool(dump_only=True)
    amr = ma_fields.List(ma_fields.String(), dump_only=True)
    auth_time = Timestamp(dump_only=True)
    status = Str(dump_only=True, validate=validate.OneOf(SESSION_STATUSES))
    created_at = Timestamp(dump_only=True)
    last_used_at = Timestamp(dump_only=True)
    expires_at = Timestamp(dump_only=True)
    revoked_at = Timestamp(dump_only=True)

    account = Rel("accounts", fk="account_id", writable=False)


class AccountSessions(Resource):
    type = "account_sessions"
    model = AccountSession
    schema = AccountSessionSchema
    actions = ("list", "show", "delete")
    attribute_types = {"status": ft.Enum(SESSION_STATUSES)}
    sort_expressions = {"status": AccountSession.status}

    audit_actions = {"delete": "logout"}

    def delete(self, ctx, obj):
        """Ending a session keeps its row (status `revoked`) for the owner's and auditors' eyes;
        the application sessions opened from it (a browser session's) end with it."""
        sessions.end(obj, ctx.now)
        sessions.end_opened_from(obj.id, ctx.now)
