"""JSON predicates with the same meaning on PostgreSQL (JSONB) and SQLite (JSON1).

On SQLite, JSON equality compares text, so the application must store JSON the way
`canonical_json` writes it: create the engine with `json_serializer=canonical_json`
(iam/config.py does).

Containment follows PostgreSQL's `@>` for the shapes filters accept: an object contains
another when every key of the second holds an equal scalar, a contained object, or an
array holding every listed scalar; an array contains every listed scalar.
"""
import json

from sqlalchemy import String, and_, cast, exists, false, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB


def canonical_json(value):
    """JSON as the engine stores it: sorted keys, no spaces, so equal objects are equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def validate_contains_value(value):
    """Raise ValueError unless `value` is a shape both databases compare the same way."""
    if isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                raise ValueError("array elements must be strings, numbers, booleans or null")
    elif isinstance(value, dict):
        for key, item in value.items():
            if '"' in key or "\\" in key:
                raise ValueError("object keys may not contain quotes or backslashes")
            if isinstance(item, (dict, list)):
                validate_contains_value(item)
    else:
        raise ValueError("expected a JSON object or array")


def _sqlite_path(path):
    return "$" + "".join('."' + key + '"' for key in path)


def _sqlite_scalar_matches(type_col, value_col, value):
    """SQLite: a json_each/json_type row holds exactly this JSON scalar."""
    if value is None:
        return type_col == "null"
    if value is True:
        return type_col == "true"
    if value is False:
        return type_col == "false"
    if isinstance(value, (int, float)):
        return and_(type_col.in_(("integer", "real")), value_col == value)
    return and_(type_col == "text", value_col == value)


def _sqlite_contains(column, path, value):
    sql_path = _sqlite_path(path)
    if isinstance(value, list):
        clauses = [func.json_type(column, sql_path) == "array"]
        for item in value:
            each = func.json_each(column, sql_path).table_valued("value", "type")
            clauses.append(exists(select(literal(1)).select_from(each).where(
                _sqlite_scalar_matches(each.c.type, each.c.value, item))))
        return and_(*clauses)
    clauses = [func.json_type(column, sql_path) == "object"]
    for key, item in value.items():
        child = path + (key,)
        if isinstance(item, (dict, list)):
            clauses.append(_sqlite_contains(column, child, item))
        else:
            clauses.append(_sqlite_scalar_matches(
                func.json_type(column, _sqlite_path(child)),
                func.json_extract(column, _sqlite_path(child)), item))
    return and_(*clauses)


def _jsonb(value):
    return cast(literal(json.dumps(value), String), JSONB)


def contains(column, value, dialect):
    """`column` (a JSON document) contains `value` (an object or an array)."""
    if dialect == "postgresql":
        return column.op("@>")(_jsonb(value))
    return _sqlite_contains(column, (), value)


def contains_any(column, key, values, dialect):
    """The array at `column[key]` holds at least one of `values`."""
    if not values:
        return false()
    return or_(*(contains(column, {key: [v]}, dialect) for v in values))


def array_has_object_with(column, key, values, dialect):
    """`column` is an array holding an object whose `key` is one of `values` (strings)."""
    if dialect == "postgresql":
        element = func.jsonb_array_elements(column).table_valued("value")
        field = element.c.value.op("->>")(literal(key, String))
    else:
        element = func.json_each(column).table_valued("value")
        field = func.json_extract(element.c.value, f'$."{key}"')
    return exists(select(literal(1)).select_from(element).where(field.in_(list(values))))


def has_key(column, key, dialect):
    """`column` is an object with `key` present (whatever its value)."""
    if dialect == "postgresql":
        return column.op("?")(literal(key, String))
    return func.json_type(column, _sqlite_path((key,))).isnot(None)


def equals(column, value, dialect):
    """JSON equality: JSONB equality on PostgreSQL, canonical text equality on SQLite."""
    if dialect == "postgresql":
        return column == _jsonb(value)
    return cast(column, String) == canonical_json(value)
