"""organizations: the tenants, with an optional usage quota."""
from flask import request
from marshmallow import Schema, fields, validate
from sqlalchemy import or_, update

from ..jsonapi import JsonApiError, Resource, query
from ..jsonapi import filters as ft
from ..jsonapi.schema import Bool, Int, JsonApiSchema, JsonObject, Rel, Str, Timestamp
from ..policies import validate_policies
from ..models import Organization
from .common import search_filter

SLUG = validate.Regexp(r"^[-a-zA-Z0-9_]+$", error="May contain only letters, digits, - and _.")


class OrganizationSchema(JsonApiSchema):
    class Meta:
        type_ = "organizations"

    name = Str(required=True, min_length=1, max_length=255)
    slug = Str(required=True, max_length=64, validate=SLUG)
    enabled = Bool()
    quota_limit = Int(allow_none=True, validate=validate.Range(min=0))
    quota_usage = Int(dump_only=True)
    quota_remaining = Int(dump_only=True, allow_none=True)  # null while there is no quota_limit
    policies = JsonObject(validate=validate_policies)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    accounts = Rel("accounts", many=True, includable=False)
    organizational_units = Rel("organizational_units", many=True, includable=False)


class IncrementSchema(Schema):
    usage = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2 ** 31 - 1))


class Organizations(Resource):
    type = "organizations"
    aliases = ("iam/organizations",)
    model = Organization
    schema = OrganizationSchema
    attribute_types = {"quota_remaining": ft.Integer()}
    sort_expressions = {"quota_remaining": Organization.quota_remaining}
    unique = {"slug": lambda value: Organization.slug == value}
    extra_filters = (
        search_filter([Organization.name, Organization.slug], doc="Free text over name and slug."),
    )

    def register_routes(self, api):
        from ..auth.views import parse_auth_body  # bodies like the auth endpoints': plain or data.attributes

        def organizations_increment(id):
            """Add to quota_usage in one conditional UPDATE: concurrent calls can never overshoot."""
            ctx = api.begin(self, "increment", authorize=False)
            spec = query.parse(request.args, self, api, collection=False)
            organization = self.get(ctx, id)
            api.policy.authorize(ctx, self, "increment", organization)
            usage = parse_auth_body(IncrementSchema)["usage"]
            model = Organization
            added = ctx.session.execute(
                update(model)
                .where(model.id == organization.id,
                       or_(model.quota_limit.is_(None), model.quota_usage + usage <= model.quota_limit),
                       model.quota_usage <= 2 ** 31 - 1 - usage)
                .values(quota_usage=model.quota_usage + usage, version=model.version + 1, updated_at=ctx.now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not added:
                ctx.session.rollback()
                raise JsonApiError(429, "quota_exceeded", "Quota exceeded",
                                   f"Adding {usage} would take the organization past its quota_limit; "
                                   "nothing was added.")
            api.on_change(ctx, self, "increment", organization, None, {"quota_usage": f"+{usage}"})
            response = api.render_stored(self, ctx, id, spec)  # before the commit: nothing may fail after it
            api.commit(ctx)
            return response

        api.blueprint.add_url_rule("/organizations/<int:id>/increment", "organizations_increment",
                                   organizations_increment, methods=["POST"])
