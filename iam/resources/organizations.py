"""organizations: the tenants, with an optional usage quota."""
from marshmallow import validate

from ..jsonapi import Resource
from ..jsonapi import filters as ft
from ..jsonapi.schema import Bool, Int, JsonApiSchema, Rel, Str, Timestamp
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
    quota_remaining = Int(dump_only=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    accounts = Rel("accounts", many=True, includable=False)
    organizational_units = Rel("organizational_units", many=True, includable=False)


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
