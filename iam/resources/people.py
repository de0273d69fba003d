"""people: the humans behind accounts, placed in an organization and optionally a unit."""
from marshmallow import fields as ma_fields
from sqlalchemy import select

from ..jsonapi import JsonApiErrors, Resource
from ..jsonapi import filters as ft
from ..jsonapi.schema import Int, JsonApiSchema, Rel, Str, Timestamp
from ..models import Account, OrganizationalUnit, Person
from .common import related_column_filter, search_filter, through


class PersonSchema(JsonApiSchema):
    class Meta:
        type_ = "people"

    organization_id = Int(required=True)
    first_name = Str(allow_none=True, max_length=255)
    middle_name = Str(allow_none=True, max_length=255)
    last_name = Str(allow_none=True, max_length=255)
    picture_url = Str(allow_none=True, max_length=2048)
    gender = Str(allow_none=True, max_length=64)
    birthday = ma_fields.Date(allow_none=True)
    secondary_email = Str(allow_none=True, max_length=320)
    contact_number = Str(allow_none=True, max_length=64)
    physical_address = Str(allow_none=True, max_length=4096)
    facets = ma_fields.List(Str(max_length=255))
    organizational_unit_id = Int(allow_none=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)

    account = Rel("accounts")
    organizational_unit = Rel("organizational_units", fk="organizational_unit_id")
    organization = Rel("organizations", fk="organization_id")


_account = through(Person.account)


class People(Resource):
    type = "people"
    aliases = ("iam/people",)
    model = Person
    schema = PersonSchema
    # A person created in a unit (its id or relationship) without an organization is in the unit's.
    implied_by = {"organization_id": ("organizational_unit", "organization_id")}
    extra_filters = (
        related_column_filter("email", _account, Account.email, ft.String(case_insensitive=True),
                              doc="The email of the person's account."),
        related_column_filter("enabled", _account, Account.enabled, ft.Boolean(),
                              doc="Whether the person's account is enabled."),
        search_filter(
            [Person.first_name, Person.middle_name, Person.last_name, Person.secondary_email,
             lambda w: _account(Account.email.icontains(w, autoescape=True))],
            doc="Free text over the names and emails; every word must match."),
    )

    def validate(self, state):
        errors = []
        unit_id = state.get("organizational_unit_id")
        if unit_id is not None and (state.changed("organizational_unit_id") or state.changed("organization_id")):
            unit_org = state.ctx.session.scalar(
                select(OrganizationalUnit.organization_id).where(OrganizationalUnit.id == unit_id))
            if unit_org is not None and unit_org != state.get("organization_id"):
                errors.append(state.error("organizational_unit_id",
                                          "The unit belongs to another organization than the person."))
        if not state.creating and state.changed("organization_id"):
            account_org = state.ctx.session.scalar(
                select(Account.organization_id).where(Account.person_id == state.obj.id))
            if account_org is not None and account_org != state.get("organization_id"):
                errors.append(state.error("organization_id",
                                          "The person's account belongs to another organization; move both."))
        if errors:
            raise JsonApiErrors(errors)

    def prepare(self, state):
        # The owner's self-service (iam/auth/policy.py): which attributes it may send at all is
        # decided first (403), before any id among them is looked up.
        check = getattr(self.registry.policy, "check_self_service", None)
        if check is not None:
            check(state.ctx, self, state)
        super().prepare(state)

