"""groups: named sets of accounts in an organization; members hold the group's roles while members.

Membership is managed at /groups/:id/relationships/members: POST adds, DELETE removes, PATCH
replaces, all idempotent. Changing who is in a group grants or takes away its roles, so it
needs the same reach as granting them (iam/auth/policy.py).
"""
from marshmallow import fields as ma_fields, validate
from sqlalchemy import select

from ..jsonapi import JsonApiError, Resource
from ..jsonapi.errors import conflict
from ..jsonapi.schema import Int, JsonApiSchema, Rel, Str, Timestamp
from ..models import Account, Group
from .invitations import InvitedRole, check_role_rows


class GroupSchema(JsonApiSchema):
    class Meta:
        type_ = "groups"

    name = Str(required=True, min_length=1, max_length=255)
    description = Str(allow_none=True, max_length=4096)
    organization_id = Int(required=True)
    roles = ma_fields.List(ma_fields.Nested(InvitedRole), validate=validate.Length(max=50))
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    members = Rel("accounts", many=True, writable=True, includable=False)
    organization = Rel("organizations", fk="organization_id")


class Groups(Resource):
    type = "groups"
    model = Group
    schema = GroupSchema

    def validate(self, state):
        if not state.creating and state.changed("organization_id"):
            raise JsonApiError(422, "read_only", "Invalid attribute", "A group cannot move to another organization.",
                               pointer=state.pointer("organization_id"))
        if state.creating:
            state.values.setdefault("roles", [])
        if state.changed("roles"):
            check_role_rows(state, self.registry)
        if state.changed("name") or state.creating:
            clash = state.ctx.session.scalar(select(Group.id).where(
                Group.organization_id == state.get("organization_id"), Group.name == state.get("name"),
                Group.id != (state.obj.id if state.obj else -1)))
            if clash is not None:
                raise conflict(f"The organization already has a group named {state.get('name')!r}.",
                               code="not_unique", pointer=state.pointer("name"))

    def write_relationship(self, ctx, group, rel, method, body):
        """Members: PATCH replaces, POST adds, DELETE removes (idempotent). Returns (before, after) ids."""
        accounts = self.registry.resource("accounts")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise JsonApiError(400, "invalid_document", "Bad request", "data must be a list of accounts.",
                               pointer="/data")
        wanted = []
        for index, item in enumerate(body["data"]):
            if not isinstance(item, dict) or self.registry.canonical_type(item.get("type")) != "accounts":
                raise JsonApiError(409, "type_mismatch", "Conflict", "Members are accounts.", pointer=f"/data/{index}")
            raw = item.get("id")
            if not isinstance(raw, str) or not raw.isdigit() or int(raw) >= 2 ** 31:
                raise JsonApiError(400, "invalid_document", "Bad request", "id must be an account id string.",
                                   pointer=f"/data/{index}/id")
            wanted.append((index, int(raw)))
        # Two queries whatever the number of accounts listed: which exist for the caller, and
        # which of those it may put into a group.
        ids = {account_id for _, account_id in wanted}
        visible = {account.id: account for account in ctx.session.scalars(
            select(Account).where(Account.id.in_(ids), *_where(accounts.visible(ctx))))}
        assignable = self.registry.policy.assignable(ctx, accounts)
        allowed = set(visible) if assignable is None else set(ctx.session.scalars(
            select(Account.id).where(Account.id.in_(ids), assignable)))
        found = {}
        for index, account_id in wanted:
            account = visible.get(account_id)
            if account is None:
                raise JsonApiError(422, "not_found", "Invalid attribute", f"There is no accounts with id {account_id}.",
                                   pointer=f"/data/{index}/id")
            if method != "DELETE":
                if account.organization_id != group.organization_id:
                    raise JsonApiError(422, "invalid_value", "Invalid attribute",
                                       "Members must belong to the group's organization.", pointer=f"/data/{index}/id")
                if account_id not in allowed:
                    raise JsonApiError(403, "forbidden", "Forbidden", "You may not add this account to a group.",
                                       pointer=f"/data/{index}/id")
            found[account_id] = account
        before = sorted(member.id for member in group.members)
        members = {member.id: member for member in group.members}
        if method == "PATCH":
            members = dict(found)
        elif method == "POST":
            members.update(found)
        else:
            for account_id in found:
                members.pop(account_id, None)
        group.members = [members[key] for key in sorted(members)]
        return before, sorted(members)


def _where(predicate):
    return [] if predicate is None else [predicate]
