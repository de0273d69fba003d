"""marshmallow-jsonapi schemas, extended for this engine.

A resource's schema declares its fields once. Request bodies are loaded and validated
through it; responses are rendered from the same declarations by `render.py`, which
compiles them into plain attribute reads (dumping through marshmallow cost most of a
large page's time).

- `Rel` declares a relationship once: its target type, whether it is to-many, the foreign
  key that gives to-one linkage without loading anything, and whether it may be included,
  filtered through or written. Links are built from the resource type, never configured.
- `JsonApiSchema` resolves type aliases in bodies through the resource registry.
"""
from datetime import timezone

import marshmallow as ma
from marshmallow import ValidationError, fields as ma_fields
from marshmallow_jsonapi import Schema as _Schema
from marshmallow_jsonapi.fields import Relationship as _Relationship


def format_timestamp(value):
    """An aware datetime as ISO 8601 in UTC with microseconds and `Z`.

    isoformat, not strftime: %Y does not pad years before 1000 to four digits."""
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Timestamp(ma_fields.DateTime):
    """ISO 8601 in UTC with microseconds and `Z`, exactly as stored (2026-01-31T12:00:00.123456Z)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return format_timestamp(value)

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            result = result.replace(tzinfo=timezone.utc)
        try:
            return result.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is before the year 1 in UTC
            raise ValidationError("The timestamp is out of range once converted to UTC.") from None


class Int(ma_fields.Integer):
    """An integer that fits the column (32-bit unless told), strictly an integer in JSON."""

    def __init__(self, *, bits=32, **kwargs):
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)
        self.limit = 2 ** (bits - 1)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        result = super()._deserialize(value, attr, data, **kwargs)
        if not -self.limit <= result < self.limit:
            raise ValidationError(f"Must be between {-self.limit} and {self.limit - 1}.")
        return result


class Bool(ma_fields.Boolean):
    """A JSON boolean, nothing else (no "yes", no 1)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Str(ma_fields.String):
    """A string; `max_length` mirrors the column so PostgreSQL never sees an oversized value."""

    def __init__(self, *, max_length=None, min_length=None, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if self.max_length is not None and len(result) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters long.")
        if self.min_length is not None and len(result) < self.min_length:
            raise ValidationError(f"Must be at least {self.min_length} characters long." if self.min_length > 1
                                  else "May not be empty.")
        return result


class JsonObject(ma_fields.Dict):
    """A free JSON object."""


class Rel(_Relationship):
    """A relationship declaration (see module docstring)."""

    def __init__(self, type_, *, many=False, fk=None, attribute=None, includable=True, filterable=True,
                 writable=None, **kwargs):
        self.fk = fk
        self.includable = includable
        self.filterable = filterable
        # `writable`: through the relationship endpoint. To-one relationships backed by a foreign
        # key are writable there unless told; to-many ones only where a resource says so. In a
        # create/update body a to-one relationship is its foreign key attribute spelled as linkage:
        # the engine (Resource.load) accepts it wherever the attribute is writable, or the
        # relationship is, and it satisfies the attribute's `required`.
        self.writable = (fk is not None) if writable is None else writable
        kwargs.setdefault("dump_only", not (self.writable and fk is not None))
        super().__init__(type_=type_, many=many, include_resource_linkage=False, attribute=attribute,
                         allow_none=True, **kwargs)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is not ma.missing and (not isinstance(value, dict) or "data" not in value):
            raise ValidationError("Must be a relationship object with a data member.")
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, obj, **kwargs):
        if value is None:
            if self.many:
                raise ValidationError("Must be a list of resource identifiers.")
            return None
        return super()._deserialize(value, attr, obj, **kwargs)

    def extract_value(self, data):
        if not isinstance(data, dict):
            raise ValidationError("Must be a resource identifier object with type and id.")
        data = dict(data)
        if isinstance(data.get("type"), str):
            data["type"] = self.parent.canonical_type(data["type"]) or data["type"]
        value = super().extract_value(data)
        if not isinstance(value, str) or not value.isdigit() or int(value) >= 2 ** 31:
            raise ValidationError("`id` must be the string form of an existing id.")
        return int(value)


class JsonApiSchema(_Schema):
    """Base schema: string ids; type aliases in bodies resolved through the resource registry."""

    id = ma_fields.Function(lambda obj: str(obj.id), dump_only=True)

    class Meta:
        type_ = "_abstract_"
        unknown = ma.RAISE

    def __init__(self, *args, registry=None, **kwargs):
        self.registry = registry
        super().__init__(*args, **kwargs)

    def canonical_type(self, name):
        return self.registry.canonical_type(name) if self.registry else name
