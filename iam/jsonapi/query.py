"""Request arguments -> QuerySpec (filters, sort, page, include, fields), or a 400.

Every mistake names the parameter it was found in (`source.parameter`); nothing unknown is
silently ignored. Lists may be comma-separated (`included=a,b`) or repeated bracket keys
(`included[]=a&included[]=b`); a bracket-list item is never split on commas, which is how
a value holding a comma is written.
"""
import base64
import binascii
import re
from dataclasses import dataclass, field

from .errors import bad_parameter
from .filters import OPERATORS

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
MAX_PAGE_NUMBER = 2 ** 31 - 1
MAX_INCLUDE_DEPTH = 3
# Bytes of path plus query string (percent-encoded, as sent) a request may have; longer is a 414.
MAX_URI_LENGTH = 4096

_FAMILY = re.compile(r"^(filter|fields|page)\[([^\[\]]+)\](\[\])?$")
_PLAIN = re.compile(r"^(sort|count|included|include)(\[\])?$")


@dataclass
class FilterSpec:
    parameter: str          # as sent, for error sources
    path: tuple             # relationship names walked before the filter
    filter: object          # the Filter declaration
    op: str
    values: list


@dataclass
class SortSpec:
    parameter_value: str
    name: str
    descending: bool


@dataclass
class QuerySpec:
    filters: list = field(default_factory=list)
    sort: list = field(default_factory=list)
    page_number: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    page_given: bool = False
    after: int | None = None          # cursor mode (page[after]): rows with a greater id; 0 = from the start
    count: bool = False
    include: list = field(default_factory=list)     # tuples of relationship names
    fields: dict = field(default_factory=dict)      # type -> frozenset of names

    @property
    def offset(self):
        return 0 if self.after is not None else (self.page_number - 1) * self.page_size


def encode_cursor(last_id):
    """An opaque cursor for "after this row" (clients pass it back, never build it)."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(raw_key, raw):
    if raw == "":
        return 0  # the start of a walk
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    kind, _, value = text.partition(":")
    if kind != "id" or not value.isdigit() or int(value) >= 2 ** 31:
        raise bad_parameter(raw_key, "page[after] takes the cursor from a links.next, or nothing to start.",
                            code="invalid_page")
    return int(value)


def _split(values, bracket):
    """Comma lists and bracket lists mean the same; bracket items are taken whole."""
    if bracket:
        return list(values)
    items = []
    for value in values:
        items.extend(value.split(","))
    return items


def _grouped(args):
    """MultiDict -> {key: (bracket_form, [values])}, refusing one key in both forms."""
    groups = {}
    for raw_key, values in args.lists():
        bracket = raw_key.endswith("[]")
        key = raw_key[:-2] if bracket else raw_key
        if key in groups and groups[key][0] != bracket:
            raise bad_parameter(raw_key, f"{key} is given both as {key} and {key}[]; use one form.")
        previous = groups.get(key, (bracket, [], raw_key))[1]
        groups[key] = (bracket, previous + list(values), raw_key)
    return groups


def parse(args, resource, registry, collection=True):
    """Parse `args` for `resource`; `collection=False` allows only `included`/`include`/`fields`."""
    spec = QuerySpec()
    include_seen = None
    for key, (bracket, values, raw_key) in _grouped(args).items():
        plain = _PLAIN.match(key + ("[]" if bracket else ""))
        family = _FAMILY.match(key + ("[]" if bracket else ""))
        if plain:
            name = plain.group(1)
            if name in ("included", "include"):
                if include_seen is not None:
                    raise bad_parameter(raw_key, "Give included paths in one parameter: included or include, not both.")
                include_seen = raw_key
                spec.include = _parse_include(raw_key, _split(values, bracket), resource, registry)
                continue
            if not collection:
                raise bad_parameter(raw_key, f"{name} applies to collections only.", code="unknown_parameter")
            if name == "sort":
                spec.sort = _parse_sort(raw_key, _split(values, bracket), resource)
            elif name == "count":
                spec.count = _parse_count(raw_key, values, bracket)
            continue
        if family:
            kind, inner = family.group(1), family.group(2)
            if kind == "fields":
                type_name = registry.canonical_type(inner)
                if type_name is None:
                    raise bad_parameter(raw_key, f"Unknown type {inner!r} in fields.", code="invalid_fields")
                if type_name in spec.fields:
                    raise bad_parameter(raw_key, f"fields for {type_name} are given twice.", code="invalid_fields")
                spec.fields[type_name] = _parse_fields(raw_key, _split(values, bracket), registry.resource(type_name))
                continue
            if not collection:
                raise bad_parameter(raw_key, f"{kind} applies to collections only.", code="unknown_parameter")
            if kind == "page":
                _parse_page(spec, inner, raw_key, values, bracket)
            else:
                spec.filters.append(_parse_filter(raw_key, inner, values, bracket, resource))
            continue
        raise bad_parameter(raw_key, f"Unknown query parameter {raw_key!r}.", code="unknown_parameter")
    if spec.after is not None:
        if spec.page_number != 1 or "page[number]" in args:
            raise bad_parameter("page[after]", "Use page[after] or page[number], not both.", code="invalid_page")
        if any(item.name != "id" or item.descending for item in spec.sort):
            raise bad_parameter("page[after]", "page[after] walks in id order: leave sort out.", code="invalid_page")
    return spec


def refuse_parameters(args, what="This endpoint"):
    """A 400 naming the first query parameter, for endpoints that take none."""
    if args:
        name = next(iter(args))
        raise bad_parameter(name, f"{what} takes no query parameters.", code="unknown_parameter")


def _single(raw_key, values, bracket):
    if bracket or len(values) != 1:
        raise bad_parameter(raw_key, f"{raw_key} takes exactly one value.")
    return values[0]


def _parse_count(raw_key, values, bracket):
    value = _single(raw_key, values, bracket).strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise bad_parameter(raw_key, "count must be true or false.")


def _parse_page(spec, inner, raw_key, values, bracket):
    if inner not in ("number", "size", "after"):
        raise bad_parameter(raw_key, f"Unknown page parameter {raw_key!r}: use page[number] (or page[after]) "
                            "and page[size].", code="invalid_page")
    raw = _single(raw_key, values, bracket).strip()
    if inner == "after":
        spec.after = _decode_cursor(raw_key, raw)
        return
    if not re.fullmatch(r"\+?\d{1,12}", raw):
        raise bad_parameter(raw_key, f"{raw_key} must be a positive whole number.", code="invalid_page")
    value = int(raw)
    if value < 1:
        raise bad_parameter(raw_key, f"{raw_key} must be at least 1.", code="invalid_page")
    if inner == "size":
        if value > MAX_PAGE_SIZE:
            raise bad_parameter(raw_key, f"page[size] may be at most {MAX_PAGE_SIZE}.", code="invalid_page")
        spec.page_size = value
    else:
        if value > MAX_PAGE_NUMBER:
            raise bad_parameter(raw_key, f"page[number] may be at most {MAX_PAGE_NUMBER}.", code="invalid_page")
        spec.page_number = value
    spec.page_given = True


def _parse_sort(raw_key, items, resource):
    sort, seen = [], set()
    for item in items:
        item = item.strip()
        descending = item.startswith("-")
        name = item[1:] if descending else item
        if not name:
            raise bad_parameter(raw_key, "Empty sort field.", code="invalid_sort")
        if name not in resource.sorts:
            raise bad_parameter(raw_key, f"{resource.type} cannot be sorted by {name!r}; sortable: "
                                + ", ".join(sorted(resource.sorts)) + ".", code="invalid_sort")
        if name in seen:
            raise bad_parameter(raw_key, f"Sort field {name!r} is given twice.", code="invalid_sort")
        seen.add(name)
        sort.append(SortSpec(item, name, descending))
    return sort


def _parse_include(raw_key, items, resource, registry):
    paths = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        names = tuple(item.split("."))
        if len(names) > MAX_INCLUDE_DEPTH:
            raise bad_parameter(raw_key, f"Included paths may be at most {MAX_INCLUDE_DEPTH} deep.",
                                code="invalid_include")
        current = resource
        for name in names:
            rel = current.relationships.get(name)
            if rel is None:
                raise bad_parameter(raw_key, f"{current.type} has no relationship {name!r} to include.",
                                    code="invalid_include")
            if not rel.includable:
                raise bad_parameter(raw_key, f"{current.type}.{name} cannot be included; "
                                    f"read it at its related link instead.", code="invalid_include")
            current = registry.resource(rel.type)
        if names not in paths:
            paths.append(names)
    return paths


def _parse_fields(raw_key, items, resource):
    names = set()
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item not in resource.fieldset_names:
            raise bad_parameter(raw_key, f"{resource.type} has no field {item!r}.", code="invalid_fields")
        names.add(item)
    return frozenset(names)


def _parse_filter(raw_key, inner, values, bracket, resource):
    """`a.b.name__op` -> FilterSpec, walking relationships for the dotted part."""
    *hops, last = inner.split(".")
    current, path = resource, []
    for hop in hops:
        rel = current.relationships.get(hop)
        if rel is None or not rel.filterable:
            raise bad_parameter(raw_key, f"{current.type} has no relationship {hop!r} to filter through.",
                                code="invalid_filter")
        current = current.registry.resource(rel.type)
        path.append(hop)
    filter_, op = current.find_filter(last)
    if filter_ is None:
        raise bad_parameter(raw_key, f"{current.type} has no filter {last!r}.", code="invalid_filter")
    if op not in filter_.ops:
        raise bad_parameter(raw_key, f"The filter {filter_.name} ({filter_.type.describe()}) does not take "
                            f"the operator {op!r}; it takes " + ", ".join(filter_.ops) + ".",
                            code="invalid_filter")
    raws = _split(values, bracket) if filter_.splits(op) else list(values)
    raws = [r.strip() if filter_.type.name not in ("string", "object") else r for r in raws]
    if filter_.splits(op) and not bracket:
        raws = [r for r in raws if r != ""] or raws
    try:
        parsed = filter_.parse_values(op, raws)
    except ValueError as exc:
        raise bad_parameter(raw_key, f"Invalid value for {raw_key}: {exc}.", code="invalid_value") from None
    return FilterSpec(raw_key, tuple(path), filter_, op, parsed)


__all__ = ["parse", "QuerySpec", "FilterSpec", "SortSpec", "OPERATORS"]
