"""What Users and Groups share: reading a SCIM body, list parameters (filter, sortBy, sortOrder,
startIndex, count, attributes, excludedAttributes), ETags, attribute projection, and PATCH.

PATCH is applied to the resource's SCIM representation (the same document GET answers), which
is then written like a PUT: one code path validates and stores every change. Operations take
the shapes identity providers send (RFC 7644 section 3.5.2 and what Okta and Entra send): op
names in any case; a `path` with a value filter (`emails[type eq "work"].value`,
`members[value eq "42"]`); no path and a value object whose keys may be dotted paths or
schema-qualified (`{"name.givenName": "Ada"}`, `{"urn:...:enterprise:2.0:User:department": "R&D"}`);
booleans as the strings "True" and "False"; member removal by a value filter or a value list.
"""
import copy
import re

from flask import request

from ..extensions import db
from . import schemas
from .errors import ScimError, invalid_syntax, invalid_value

MAX_BODY = 1024 * 1024


def body():
    """The request's JSON object (application/scim+json or application/json)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ScimError(413, "The body is too large.")
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise invalid_syntax("The body must be a JSON object.")
    return data


def list_parameters(source):
    """(filter, sort_by, descending, start_index, count, attributes, excluded) from a query or a
    SearchRequest body."""
    def number(name, default, low):
        value = source.get(name)
        if value is None or value == "":
            return default
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise invalid_value(f"{name} must be a number.") from None
        return max(low, min(value, 2 ** 31 - 1))  # beyond it no page exists (and OFFSET would overflow)
    order = str(source.get("sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise invalid_value("sortOrder is ascending or descending.")
    return (source.get("filter"), source.get("sortBy"), order == "descending", number("startIndex", 1, 1),
            min(number("count", 100, 0), schemas.MAX_RESULTS), _names(source.get("attributes")),
            _names(source.get("excludedAttributes")))


def _names(value):
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_value("attributes are a comma-separated list of attribute names.")
    return [v.strip() for v in value if v.strip()]


def taken(query, id_column, except_id=None):
    """Whether `query` (a select of ids) finds a row but `except_id`: a uniqueness check."""
    if except_id is not None:
        query = query.where(id_column != except_id)
    return db.session.scalar(query.limit(1)) is not None


def etag(version):
    return f'W/"{version}"'


def check_if_match(current):
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    tags = {t.strip() for t in wanted.split(",")}
    if "*" not in tags and current not in tags and current.removeprefix("W/") not in tags:
        raise ScimError(412, "The resource changed since that version (If-Match).")


# -- attribute names ---------------------------------------------------------------------------

def split_path(path, core_urn):
    """(schema URN or None, attribute path) of `urn:...:attr.sub` or `attr.sub`."""
    lowered = path.lower()
    for urn in (schemas.ENTERPRISE, schemas.USER, schemas.GROUP):
        if lowered.startswith(urn.lower() + ":"):
            return (None if urn == core_urn else urn), path[len(urn) + 1:]
        if lowered == urn.lower():
            return urn, ""
    return None, path


def _key(container, name):
    """The key of `container` matching `name` case-insensitively (or `name`)."""
    for key in container:
        if key.lower() == name.lower():
            return key
    return name


def project(document, attributes, excluded, core_urn):
    """Only the attributes asked for (id, schemas and meta always), or all but the excluded."""
    if not attributes and not excluded:
        return document
    if attributes:
        kept = {"schemas": document["schemas"], "id": document["id"]}
        if "meta" in document:
            kept["meta"] = document["meta"]
        for name in attributes:
            urn, path = split_path(name, core_urn)
            source, target = (document.get(urn), kept.setdefault(urn, {})) if urn else (document, kept)
            if not isinstance(source, dict):
                continue
            head, _, sub = path.partition(".")
            key = _key(source, head)
            if key not in source:
                continue
            if sub and isinstance(source[key], dict):
                inner = _key(source[key], sub)
                if inner in source[key]:
                    target.setdefault(key, {})[inner] = source[key][inner]
            elif sub and isinstance(source[key], list):
                target[key] = [{k: v for k, v in item.items() if k.lower() == sub.lower()} for item in source[key]]
            else:
                target[key] = source[key]
        return {k: v for k, v in kept.items() if v != {} or k in ("schemas", "id")}
    kept = copy.deepcopy(document)
    for name in excluded:
        urn, path = split_path(name, core_urn)
        target = kept.get(urn) if urn else kept
        if not isinstance(target, dict):
            continue
        head, _, sub = path.partition(".")
        key = _key(target, head)
        if key in ("id", "schemas", "meta"):
            continue
        if sub and isinstance(target.get(key), dict):
            target[key].pop(_key(target[key], sub), None)
        else:
            target.pop(key, None)
    return kept


# -- PATCH -------------------------------------------------------------------------------------

_VALUE_PATH = re.compile(r"^(?P<attr>[A-Za-z$][\w$-]*)\[(?P<filter>[^\]]*)\](?:\.(?P<sub>[A-Za-z$][\w$-]*))?$")
_CONDITION = re.compile(r'^\s*(?P<name>[A-Za-z$][\w$.-]*)\s+(?P<op>eq|ne|co|sw|ew|pr)\s*(?P<value>"(?:[^"\\]|\\.)*"|true|false|null|-?\d+(?:\.\d+)?)?\s*$',
                        re.IGNORECASE)


def coerce_boolean(value):
    """Okta and Entra send booleans as "True" and "False" too."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _literal(text):
    import json
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise invalid_value(f"Not a value: {text}") from None


def _matches(item, text):
    """Whether a list element matches a value filter (conditions joined by `and` / `or`)."""
    if not isinstance(item, dict):
        return False
    for alternative in re.split(r"\s+or\s+", text, flags=re.IGNORECASE):
        if all(_condition(item, part) for part in re.split(r"\s+and\s+", alternative, flags=re.IGNORECASE)):
            return True
    return False


def _condition(item, text):
    found = _CONDITION.match(text)
    if found is None:
        raise ScimError(400, f"A value filter this server does not take: {text}", "invalidFilter")
    actual = item.get(_key(item, found["name"]))
    op, expected = found["op"].lower(), _literal(found["value"])
    if op == "pr":
        return actual not in (None, "", [])
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return actual == coerce_boolean(expected) or (isinstance(actual, bool) and actual == coerce_boolean(expected))
    if op == "ne":
        return actual != expected
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    return {"co": expected in actual, "sw": actual.startswith(expected), "ew": actual.endswith(expected)}[op]


def apply_patch(document, payload, core_urn, multi_valued):
    """The document after the PatchOp `payload` (a new dict). `multi_valued`: the names of the
    multi-valued attributes (lists)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Operations"), list) \
            or not payload["Operations"]:
        raise invalid_syntax("A PATCH body is a PatchOp with Operations.")
    doc = copy.deepcopy(document)
    for operation in payload["Operations"]:
        if not isinstance(operation, dict):
            raise invalid_syntax("Each operation is an object.")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "remove", "replace"):
            raise invalid_syntax(f"op is add, remove or replace, not {operation.get('op')!r}.")
        path = operation.get("path")
        value = operation.get("value")
        if path is None or path == "":
            if op == "remove":
                raise ScimError(400, "remove needs a path.", "noTarget")
            if not isinstance(value, dict):
                raise invalid_value("Without a path, the value is an object of attributes.")
            for name, item in value.items():
                _apply(doc, op, str(name), item, core_urn, multi_valued)
        else:
            if not isinstance(path, str) or len(path) > 512:
                raise ScimError(400, "path is a string.", "invalidPath")
            _apply(doc, op, path, value, core_urn, multi_valued)
    return doc


def _container(doc, urn):
    if urn is None:
        return doc
    if not isinstance(doc.get(urn), dict):
        doc[urn] = {}
    return doc[urn]


def _apply(doc, op, path, value, core_urn, multi_valued):
    urn, rest = split_path(path, core_urn)
    if urn is not None and rest == "" and op == "remove":
        doc.pop(urn, None)  # the whole extension
        return
    if urn is not None and rest == "":
        if not isinstance(value, dict):
            raise invalid_value(f"{path} takes an object.")
        for name, item in value.items():
            _apply(doc, op, f"{urn}:{name}", item, core_urn, multi_valued)
        return
    target = _container(doc, urn)
    found = _VALUE_PATH.match(rest)
    if found is not None:
        _apply_filtered(target, op, found["attr"], found["filter"], found["sub"], value)
        return
    head, _, sub = rest.partition(".")
    if not head or not re.match(r"^[A-Za-z$][\w$-]*$", head) or (sub and not re.match(r"^[A-Za-z$][\w$-]*$", sub)):
        raise ScimError(400, f"Not an attribute path: {path}", "invalidPath")
    key = _key(target, head)
    is_multi = head.lower() in multi_valued
    if sub:
        if is_multi:  # emails.value: every element
            for item in target.get(key) or []:
                if isinstance(item, dict):
                    _set(item, op, sub, value)
            return
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = target[key] = {}
        _set(inner, op, sub, value)
        return
    if is_multi:
        current = target.get(key) or []
        if op == "remove":
            if value is None:
                target[key] = []
            else:  # Entra: remove these members, listed in value
                gone = {str(v.get("value")) for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)}
                target[key] = [item for item in current if str(item.get("value")) not in gone]
            return
        items = value if isinstance(value, list) else [value]
        if op == "replace":
            target[key] = list(items)
        else:
            known = {str(item.get("value")) for item in current if isinstance(item, dict)}
            target[key] = current + [item for item in items
                                     if not (isinstance(item, dict) and str(item.get("value")) in known)]
        return
    if op == "add" and isinstance(value, dict) and isinstance(target.get(key), dict):
        target[key].update(value)  # a complex attribute's sub-attributes, merged
    else:
        _set(target, op, head, value)


def _set(container, op, name, value):
    key = _key(container, name)
    if op == "remove":
        container.pop(key, None)
    else:
        container[key] = coerce_boolean(value)


def _apply_filtered(target, op, attr, condition, sub, value):
    key = _key(target, attr)
    items = target.get(key) or []
    if not isinstance(items, list):
        raise ScimError(400, f"{attr} is not multi-valued.", "invalidPath")
    matching = [item for item in items if _matches(item, condition)]
    if op == "remove":
        if sub:
            for item in matching:
                item.pop(_key(item, sub), None)
        else:
            target[key] = [item for item in items if item not in matching]
        return
    if not matching:
        if op == "replace" and sub is None:
            raise ScimError(400, f"No {attr} matches {condition}.", "noTarget")
        # add (or Entra's replace of emails[type eq "work"].value on a user that has none): a new element
        element = {}
        for part in re.split(r"\s+and\s+", condition, flags=re.IGNORECASE):
            found = _CONDITION.match(part)
            if found and found["op"].lower() == "eq":
                element[found["name"]] = _literal(found["value"])
        if sub:
            element[sub] = coerce_boolean(value)
        elif isinstance(value, dict):
            element.update(value)
        items.append(element)
        target[key] = items
        return
    for item in matching:
        if sub:
            item[_key(item, sub)] = coerce_boolean(value)
        elif isinstance(value, dict):
            item.update(value)
