"""organizational_units: a tree of units inside an organization.

Each unit keeps two derived columns: `path`, the readable names from the root
(`/sales/emea`), and `ancestry`, the ids from the root (`/3/17/`). Moving or renaming a
unit rewrites both for the whole subtree with one UPDATE each, inside the same transaction.
"""
from flask import request
from marshmallow import validate
from sqlalchemy import func, select, update

from ..jsonapi import Filter, JsonApiError, JsonApiErrors, Resource, query
from ..jsonapi.errors import conflict
from ..jsonapi import filters as ft
from ..jsonapi.schema import Int, JsonApiSchema, JsonObject, Rel, Str, Timestamp
from ..models import OrganizationalUnit
from ..policies import CATALOGUE, validate_policies

Unit = OrganizationalUnit


class OrganizationalUnitSchema(JsonApiSchema):
    class Meta:
        type_ = "organizational_units"

    organization_id = Int(required=True)
    parent_id = Int(allow_none=True)
    name = Str(required=True, min_length=1, max_length=255,
               validate=validate.Regexp(r"^[^/]+$", error="May not contain '/'."))
    path = Str(dump_only=True)
    description = Str(allow_none=True, max_length=4096)
    policies = JsonObject(validate=validate_policies)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    organization = Rel("organizations", fk="organization_id")
    parent = Rel("organizational_units", fk="parent_id")
    children = Rel("organizational_units", many=True)
    people = Rel("people", many=True, includable=False)


def _root_only(op, values, ctx):
    return Unit.parent_id.is_(None) if values[0] else Unit.parent_id.isnot(None)


class OrganizationalUnits(Resource):
    type = "organizational_units"
    aliases = ("iam/organizational_units",)
    model = OrganizationalUnit
    schema = OrganizationalUnitSchema
    extra_filters = (
        Filter("root_only", ft.Boolean(), build=_root_only, operators=("eq",),
               doc="true: only units without a parent; false: only units with one."),
    )

    def validate(self, state):
        session, errors = state.ctx.session, []
        if not state.creating and state.changed("organization_id"):
            raise JsonApiErrors([state.error("organization_id", "A unit cannot move to another organization.",
                                             code="read_only")])
        parent_id = state.get("parent_id")
        parent = session.get(Unit, parent_id) if parent_id is not None else None
        if parent is not None:
            if parent.organization_id != state.get("organization_id"):
                errors.append(state.error("parent_id", "The parent unit belongs to another organization."))
            elif state.obj is not None and (parent.id == state.obj.id
                                            or parent.ancestry.startswith(state.obj.ancestry)):
                errors.append(state.error("parent_id", "A unit cannot be moved below itself.", code="cycle"))
        if errors:
            raise JsonApiErrors(errors)
        if state.changed("name") or state.changed("parent_id"):
            new_path = (parent.path if parent else "") + "/" + state.get("name")
            clash = session.scalar(select(Unit.id).where(
                Unit.organization_id == state.get("organization_id"), Unit.path == new_path,
                Unit.id != (state.obj.id if state.obj else -1)).limit(1))
            if clash is not None:
                raise conflict(f"A unit named {state.get('name')!r} already exists there.", code="not_unique",
                               pointer=state.pointer("name"))
        state.derived["parent"] = parent

    def create(self, state):
        parent = state.derived["parent"]
        obj = Unit(**state.values)
        obj.path = (parent.path if parent else "") + "/" + obj.name
        obj.ancestry = parent.ancestry if parent else "/"
        state.ctx.session.add(obj)
        state.ctx.api.flush(state.ctx)  # the id is part of the ancestry
        obj.ancestry = f"{obj.ancestry}{obj.id}/"
        return obj

    def update(self, state):
        obj = state.obj
        moved = state.changed("parent_id")
        renamed = state.changed("name")
        old_path, old_ancestry = obj.path, obj.ancestry
        super().update(state)
        state.ctx.api.flush(state.ctx)
        if moved or renamed:
            parent = state.derived["parent"]
            obj.path = (parent.path if parent else "") + "/" + obj.name
            obj.ancestry = (parent.ancestry if parent else "/") + f"{obj.id}/"
            # Rewrite the subtree: descendants are exactly the rows whose ancestry extends ours.
            state.ctx.session.execute(
                update(Unit)
                .where(Unit.ancestry.startswith(old_ancestry), Unit.id != obj.id)
                .values(path=obj.path + func.substr(Unit.path, len(old_path) + 1),
                        ancestry=obj.ancestry + func.substr(Unit.ancestry, len(old_ancestry) + 1),
                        version=Unit.version + 1, updated_at=state.ctx.now),
                execution_options={"synchronize_session": False},
            )
        return obj

    def register_routes(self, api):
        def policy_object(ctx, key):
            value_type, description = CATALOGUE[key]
            return {"type": "policies", "id": key,
                    "attributes": {"key": key, "value_type": value_type, "description": description},
                    "links": {"self": f"{ctx.base_url}/organizational_units/policies/{key}"}}

        def organizational_units_policies():
            """The catalogue of policy keys a unit's `policies` may hold."""
            ctx = api.begin(self, "list")
            query.refuse_parameters(request.args, "The catalogue")
            data = [policy_object(ctx, key) for key in sorted(CATALOGUE)]
            return api.respond({"data": data, "meta": {"count": len(data)}, "links": {"self": request.base_url},
                                "jsonapi": {"version": "1.1"}})

        def organizational_units_policy(key):
            """One policy of the catalogue, by its key."""
            ctx = api.begin(self, "show")
            query.refuse_parameters(request.args, "The catalogue")
            if key not in CATALOGUE:
                raise JsonApiError(404, "not_found", "Not found", f"There is no policy {key!r} in the catalogue.")
            document = {"data": policy_object(ctx, key), "links": {"self": request.base_url},
                        "jsonapi": {"version": "1.1"}}
            return api.respond(document)

        api.blueprint.add_url_rule("/organizational_units/policies", "organizational_units_policies",
                                   organizational_units_policies, methods=["GET"])
        api.blueprint.add_url_rule("/organizational_units/policies/<key>", "organizational_units_policy",
                                   organizational_units_policy, methods=["GET"])
