"""settings: server-wide key/value configuration (administrators only)."""
from marshmallow import fields as ma_fields, validate

from ..jsonapi import Resource
from ..jsonapi.schema import JsonApiSchema, Str, Timestamp
from ..models.setting import Setting


class SettingSchema(JsonApiSchema):
    class Meta:
        type_ = "settings"

    key = Str(required=True, min_length=1, max_length=128,
              validate=validate.Regexp(r"^[a-z0-9][a-z0-9_.-]*$", error="Lower-case letters, digits, _ . - only."))
    value = ma_fields.Raw(allow_none=True)
    created_at = Timestamp(dump_only=True)
    updated_at = Timestamp(dump_only=True)


class Settings(Resource):
    type = "settings"
    model = Setting
    schema = SettingSchema
    unique = {"key": lambda value: Setting.key == value}
