"""The operator table: (field type, operator, parsed values) -> SQL expression.

Each field type says which operators fit it and how a raw query-string value parses.
A declared `Filter` couples a name with a type and either a column expression (the
standard operators are built here) or a function that builds a custom predicate.
"""
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

from sqlalchemy import func, not_, or_

from . import jsonsql

OPERATORS = ("eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "match", "prefix", "suffix",
             "contains", "exists")
# Operators whose value is a list: a comma-separated value is split into items for these.
LIST_OPERATORS = ("eq", "neq", "in", "nin", "contains")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_bool(raw):
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("expected true, false, 1 or 0")


def _check_text(raw):
    if "\x00" in raw:
        raise ValueError("NUL characters are not allowed")
    return raw


class FieldType:
    """A filterable value type; subclasses narrow the operators and parse values."""

    name = "string"
    operators = ("eq", "neq", "in", "nin", "exists")
    sortable = True
    nullable_literal = True  # the value `null` means IS NULL for eq/neq
    json_schema = None  # what parse() accepts, for the OpenAPI document, when no built-in type says it

    def parse(self, raw):
        return _check_text(raw)

    def describe(self):
        return self.name

    def build(self, column, op, values, dialect, nullable=True):
        """SQL for `column OP values`; `values` are already parsed."""
        if op in ("eq", "in"):
            return _in(column, values, self, negate=False, nullable=nullable)
        if op in ("neq", "nin"):
            return _in(column, values, self, negate=True, nullable=nullable)
        if op == "exists":
            return column.isnot(None) if values[0] else column.is_(None)
        (value,) = values
        if op == "lt":
            return column < value
        if op == "lte":
            return column <= value
        if op == "gt":
            return column > value
        if op == "gte":
            return column >= value
        if op == "match":
            return column.icontains(value, autoescape=True)
        if op == "prefix":
            return column.istartswith(value, autoescape=True)
        if op == "suffix":
            return column.iendswith(value, autoescape=True)
        raise AssertionError(f"unhandled operator {op}")

    def compare_value(self, column):
        return column


def _in(column, values, ftype, negate, nullable):
    """eq/in (or neq/nin): a list means IN, the value null means IS NULL.

    "Not equal" keeps rows whose value is missing (NULL): a careful user asking for
    accounts whose expiry is not X expects the ones that never expire too.
    """
    has_null = any(v is None for v in values)
    concrete = [v for v in values if v is not None]
    target = ftype.compare_value(column)
    parts = []
    if concrete:
        parts.append(target == concrete[0] if len(concrete) == 1 else target.in_(concrete))
    if has_null:
        parts.append(column.is_(None))
    positive = or_(*parts) if len(parts) > 1 else parts[0]
    if not negate:
        return positive
    if has_null:
        return not_(positive) if concrete else column.isnot(None)
    negative = target != concrete[0] if len(concrete) == 1 else target.notin_(concrete)
    return or_(negative, column.is_(None)) if nullable else negative


class String(FieldType):
    name = "string"
    operators = ("eq", "neq", "in", "nin", "match", "prefix", "suffix", "exists")

    def __init__(self, case_insensitive=False):
        self.case_insensitive = case_insensitive

    def parse(self, raw):
        raw = _check_text(raw)
        return raw.lower() if self.case_insensitive else raw

    def compare_value(self, column):
        return func.lower(column) if self.case_insensitive else column


class Enum(String):
    name = "enum"
    operators = ("eq", "neq", "in", "nin", "exists")

    def __init__(self, choices):
        super().__init__()
        self.choices = tuple(choices)

    def parse(self, raw):
        if raw not in self.choices:
            raise ValueError("expected one of " + ", ".join(self.choices))
        return raw

    def describe(self):
        return "enum(" + "|".join(self.choices) + ")"


class Integer(FieldType):
    name = "integer"
    operators = ("eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "exists")

    def __init__(self, bits=32):
        self.limit = 2 ** (bits - 1)

    def parse(self, raw):
        text = raw.strip()
        if not re.fullmatch(r"[-+]?\d{1,20}", text):
            raise ValueError("expected an integer")
        value = int(text)
        if not -self.limit <= value < self.limit:
            raise ValueError("integer out of range")
        return value


class Number(FieldType):
    name = "number"
    operators = ("eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "exists")

    def parse(self, raw):
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value


class Boolean(FieldType):
    name = "boolean"
    operators = ("eq", "neq", "exists")

    def parse(self, raw):
        return parse_bool(raw)


class DateTime(FieldType):
    """Timestamps: ISO 8601; no offset means UTC; a bare date means its midnight UTC."""

    name = "datetime"
    operators = ("eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "exists")

    def parse(self, raw):
        text = raw.strip()
        try:
            if _ISO_DATE.match(text):
                value = datetime.combine(date.fromisoformat(text), datetime.min.time())
            else:
                value = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError("expected an ISO 8601 timestamp such as 2026-01-31T12:00:00.123456Z") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("timestamp out of range") from None


class Date(FieldType):
    name = "date"
    operators = ("eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "exists")

    def parse(self, raw):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            raise ValueError("expected an ISO 8601 date such as 2026-01-31") from None


class Json(FieldType):
    """A JSON object: equality of the whole document, or containment of a partial one."""

    name = "object"
    operators = ("eq", "contains", "exists")
    sortable = False
    splits = False  # commas belong to the JSON text

    def parse(self, raw):
        try:
            value = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise ValueError("expected a JSON object") from None
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        _reject_nul(value)
        return value

    def build(self, column, op, values, dialect, nullable=True):
        if op == "exists":
            return _json_missing(column, dialect, negate=values[0])
        if op == "eq":
            return or_(*(_json_missing(column, dialect) if v is None else jsonsql.equals(column, v, dialect)
                         for v in values))
        jsonsql.validate_contains_value(values[0])
        return jsonsql.contains(column, values[0], dialect)


class Array(FieldType):
    """A JSON array of scalars: `contains` asks for every listed item to be present."""

    name = "array"
    operators = ("contains", "exists")
    sortable = False

    def __init__(self, item_type=None):
        self.item_type = item_type or String()

    def parse(self, raw):
        return self.item_type.parse(raw)

    def describe(self):
        return f"array({self.item_type.describe()})"

    def build(self, column, op, values, dialect, nullable=True):
        if op == "exists":
            return _json_missing(column, dialect, negate=values[0])
        return jsonsql.contains(column, list(values), dialect)


def _json_missing(column, dialect, negate=False):
    """No value in a JSON column: SQL NULL or the JSON value null (how JSON types store None)."""
    missing = or_(column.is_(None), jsonsql.equals(column, None, dialect))
    return not_(missing) if negate else missing


def _no_constant(name):
    raise ValueError(name)


def _reject_nul(value):
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k)
            _reject_nul(v)
    elif isinstance(value, list):
        for v in value:
            _reject_nul(v)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")


@dataclass
class Filter:
    """A named filter of a resource.

    Either `column` (an SQL expression; the type's standard operators apply) or `build`,
    a function `(op, values, ctx) -> predicate` for filters that are not a plain column
    (`search`, `role_name`, ...); such a function may also refuse the caller.
    """

    name: str
    type: FieldType
    column: Any = None
    build: Callable | None = None
    operators: tuple | None = None
    nullable: bool = True
    doc: str = ""

    @property
    def ops(self):
        return self.operators or self.type.operators

    def splits(self, op):
        return op in LIST_OPERATORS and getattr(self.type, "splits", True)

    @property
    def takes_null(self):
        """Whether the value `null` (eq/neq) means IS NULL: only on a column that can be null.

        Anywhere else it is an ordinary value of the type, so a filter with a `build` function
        never sees None, and `filter[id]=null` is a 400 like any other value that is no integer.
        """
        return self.type.nullable_literal and self.column is not None and self.nullable

    def parse_values(self, op, raws):
        """Parse raw strings for `op`; raises ValueError with a message for the client."""
        if op == "exists":
            if len(raws) != 1:
                raise ValueError("exists takes one value: true or false")
            return [parse_bool(raws[0])]
        if not raws:
            raise ValueError("a value is required")
        if op not in LIST_OPERATORS and len(raws) != 1:
            raise ValueError(f"{op} takes a single value")
        if op == "contains" and not getattr(self.type, "splits", True) and len(raws) != 1:
            raise ValueError("contains takes a single value")
        values = []
        for raw in raws:
            if op in ("eq", "neq") and raw == "null" and self.takes_null:
                values.append(None)
            else:
                values.append(self.type.parse(raw))
        return values

    def to_sql(self, op, values, ctx):
        if self.build is not None:
            return self.build(op, values, ctx)
        return self.type.build(self.column, op, values, ctx.dialect, nullable=self.nullable)
