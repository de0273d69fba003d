"""OpenAPI 3.1 from the resource declarations, and the routes that publish it.

A filter, sort, include or attribute that is not declared does not exist, so the
declarations are also the documentation: `build_openapi` walks every registered
resource (routes allowed by its actions, relationships, filters with their operators,
sorts, include paths, marshmallow fields) and then every other route of the blueprint
found in the app's url_map, so nothing the server answers is left out. What the engine
cannot know about those other routes (a summary, a body, that a route is public) comes
from `operations`, keyed by `"METHOD /path"` or by Flask endpoint name:

    summary, description, tags   text
    public                       True: no authentication (security: [])
    body                         a JSON Schema for the request body, or None: takes no body
    resource                     TYPE: answers with one TYPE document, takes its include/fields
    parameters                   extra parameter objects (e.g. a query parameter)
    responses                    {status: description or response object}; a 2xx replaces the default
    errors                       extra error statuses (e.g. ("401", "429"))
    methods                      an endpoint-name key's override for these methods only

`register_docs` adds `GET /openapi.json` and `GET /docs` (Swagger UI, its files served
by the app itself, so the page loads nothing from elsewhere). Both are public; the
document is built once per app and cached.
"""
import inspect
import json
import re
import sys

import marshmallow as ma
from flask import Response, current_app, send_from_directory, url_for
from marshmallow import validate as ma_validate

from . import filters as f
from .media import JSONAPI_MEDIA_TYPE, SUPPORTED_EXTENSIONS
from .query import DEFAULT_PAGE_SIZE, MAX_INCLUDE_DEPTH, MAX_PAGE_NUMBER, MAX_PAGE_SIZE, MAX_URI_LENGTH
from .schema import Rel

OPENAPI_VERSION = "3.1.0"
OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.1"
# Request bodies: JSON:API's media type, and plain JSON for older clients.
REQUEST_MEDIA_TYPES = (JSONAPI_MEDIA_TYPE, "application/json")
DOCS_STATIC_ENDPOINT = "docs_static"  # Swagger UI's own files: not part of the API
_IGNORED_METHODS = {"HEAD", "OPTIONS"}

ERRORS = {
    "400": ("BadRequest", ("Malformed query parameter or body; `source.parameter` or `source.pointer` "
                           "names the culprit.")),
    "401": ("Unauthenticated", "No credentials, or invalid or expired ones."),
    "403": ("Forbidden", "Authenticated but not allowed."),
    "404": ("NotFound", "No such resource, or one the caller may not see."),
    "405": ("MethodNotAllowed", "The method does not apply here (`Allow` lists those that do)."),
    "406": ("NotAcceptable", (f"`Accept` lists {JSONAPI_MEDIA_TYPE} only with parameters other than "
                              "ext/profile or with extensions not in `x-jsonapi-extensions`, and no "
                              "application/json or wildcard.")),
    "409": ("Conflict", ("`data.type`/`data.id` do not fit the endpoint, a unique value is taken, or "
                         "other records still refer to this one.")),
    "412": ("PreconditionFailed", ("`If-Match` does not match the current ETag, or the resource changed "
                                   "meanwhile.")),
    "413": ("PayloadTooLarge", "The request body is too large."),
    "414": ("UriTooLong", (f"The path and query string together are longer than {MAX_URI_LENGTH} bytes "
                           "(percent-encoded, as sent).")),
    "415": ("UnsupportedMediaType", (f"The body is neither {JSONAPI_MEDIA_TYPE} (parameters ext/profile "
                                     "only, extensions only those of `x-jsonapi-extensions`) nor "
                                     "application/json.")),
    "422": ("UnprocessableEntity", ("Validation failed: one error per field, `source.pointer` like "
                                    "`/data/attributes/NAME`.")),
    "429": ("TooManyRequests", "Rate limited: retry after `Retry-After` seconds."),
    "503": ("ServiceUnavailable", "Something the request needs cannot answer now (the database, an identity "
                                  "provider): nothing was done; retry after `Retry-After` seconds."),
}

# What each filter operator means (the part after `__`; none means eq).
OPERATOR_DOC = {
    "eq": "equal",
    "neq": "not equal",
    "in": "in the list",
    "nin": "not in the list",
    "lt": "less than",
    "lte": "less than or equal",
    "gt": "greater than",
    "gte": "greater than or equal",
    "match": "contains the text, case-insensitively",
    "prefix": "starts with the text, case-insensitively",
    "suffix": "ends with the text, case-insensitively",
    "contains": "contains the value(s)",
    "exists": "`true`: has a value; `false`: is null",
}

_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^>]*\))?:)?(\w+)>")
_CONVERTER_SCHEMAS = {"int": {"type": "integer"}, "float": {"type": "number"},
                      "uuid": {"type": "string", "format": "uuid"}}


def _ref(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(type_name, kind="Document"):
    """A reference to a resource's generated schema: Document, Collection, Resource, Attributes, ..."""
    return _ref("schemas", f"{_camel(type_name)}{kind}")


def _camel(type_name):
    """`organizational_units` -> `OrganizationalUnits`, a valid component name."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", type_name) if part)


def _first_paragraph(text):
    return inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ") if text else ""


def _nullable(schema):
    """Let `schema` also be null, the 3.1 way (a type list; null in an enum)."""
    schema = dict(schema)
    kind = schema.get("type")
    if kind is None or kind == "null" or (isinstance(kind, list) and "null" in kind):
        return schema  # nullable already (a nullable field rendered from a nullable column, say)
    schema["type"] = [kind, "null"] if isinstance(kind, str) else [*kind, "null"]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def openapi_path(rule_text):
    """Flask's `/a/<int:id>` -> (`/a/{id}`, [path parameter objects])."""
    parameters = []

    def replace(match):
        converter, name = match.group(1) or "string", match.group(2)
        parameters.append({"name": name, "in": "path", "required": True,
                           "schema": dict(_CONVERTER_SCHEMAS.get(converter, {"type": "string"}))})
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule_text), parameters


# --------------------------------------------------------------- value schemas

def field_schema(field):
    """JSON Schema of one marshmallow field: type, format, limits, enum, nullable, read/write-only."""
    fields = ma.fields
    if isinstance(field, fields.List):
        schema = {"type": "array", "items": field_schema(field.inner)}
    elif isinstance(field, fields.Date):  # before DateTime: Date is a DateTime in marshmallow
        schema = {"type": "string", "format": "date"}
    elif isinstance(field, fields.DateTime):
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(field, fields.Boolean):
        schema = {"type": "boolean"}
    elif isinstance(field, fields.Integer):
        limit = getattr(field, "limit", 2 ** 31)
        schema = {"type": "integer", "format": "int32" if limit <= 2 ** 31 else "int64"}
    elif isinstance(field, fields.Number):
        schema = {"type": "number"}
    elif isinstance(field, fields.String):
        schema = {"type": "string"}
        if isinstance(field, fields.Email):
            schema["format"] = "email"
        elif isinstance(field, fields.Url):
            schema["format"] = "uri"
        elif isinstance(field, fields.UUID):
            schema["format"] = "uuid"
        if getattr(field, "min_length", None):
            schema["minLength"] = field.min_length
        if getattr(field, "max_length", None):
            schema["maxLength"] = field.max_length
    elif isinstance(field, (fields.Dict, fields.Mapping, fields.Nested)):
        schema = {"type": "object"}
    else:
        schema = {}  # Raw, Function, ...: any JSON value
    for validator in field.validators:
        _apply_validator(schema, validator)
    if field.allow_none:
        schema = _nullable(schema)
    description = field.metadata.get("description")
    if description:
        schema["description"] = description
    if field.dump_only:
        schema["readOnly"] = True
    if field.load_only:
        schema["writeOnly"] = True
    return schema


def _link_spellings(resource):
    """Each required attribute a create body may give otherwise -> (the JSON Schemas of its spellings
    in `data`, one of which must be there; what they are, in words): a to-one relationship is its
    foreign key spelled as linkage, and an attribute the resource implies (`implied_by`) may come
    from the related row instead."""
    def attribute(name, non_null=False):
        member = {"required": [name]}
        kind = field_schema(resource.schema_class._declared_fields[name]).get("type")
        if non_null and isinstance(kind, list):  # the field's own type(s), null left out
            member["properties"] = {name: {"type": next(k for k in kind if k != "null")}}
        return {"required": ["attributes"], "properties": {"attributes": member}}

    def relationship(name, non_null=False):
        data = {"properties": {name: {"properties": {"data": {"type": "object"}}}}} if non_null else {}
        return {"required": ["relationships"], "properties": {"relationships": {"required": [name], **data}}}

    found = {}
    for rel in resource.relationships.values():
        if rel.settable:
            fk = resource.attribute_field_names.get(rel.fk, rel.fk)
            found[fk] = ([attribute(fk), relationship(rel.name)], [f"as `{fk}` or as the relationship `{rel.name}`"])
    for attr, (rel_name, column) in resource.implied_by.items():
        name = resource.attribute_field_names.get(attr, attr)
        source = resource.relationships[rel_name]
        source_fk = resource.attribute_field_names.get(source.fk, source.fk)
        spellings, said = found.setdefault(name, ([attribute(name)], [f"as `{name}`"]))
        spellings.extend([attribute(source_fk, non_null=True), relationship(rel_name, non_null=True)])
        said.append(f"or left out when `{source_fk}` (or `{rel_name}`) is given: then it is that "
                    f"{source.type} row's `{column}`")
    return {name: (spellings, " ".join(said)) for name, (spellings, said) in found.items()}


def _apply_validator(schema, validator):
    array = schema.get("type") == "array"
    if isinstance(validator, ma_validate.OneOf):
        schema["enum"] = list(validator.choices)
    elif isinstance(validator, ma_validate.Length):
        if validator.min is not None:
            schema["minItems" if array else "minLength"] = validator.min
        if validator.max is not None:
            schema["maxItems" if array else "maxLength"] = validator.max
    elif isinstance(validator, ma_validate.Range):
        if validator.min is not None:
            schema["minimum" if validator.min_inclusive else "exclusiveMinimum"] = validator.min
        if validator.max is not None:
            schema["maximum" if validator.max_inclusive else "exclusiveMaximum"] = validator.max
    elif isinstance(validator, ma_validate.Regexp):
        schema["pattern"] = validator.regex.pattern


def filter_value_schema(ftype):
    """JSON Schema of one query-string value of a filter type."""
    if ftype.json_schema is not None:
        return dict(ftype.json_schema)
    if isinstance(ftype, f.Enum):
        return {"type": "string", "enum": list(ftype.choices)}
    if isinstance(ftype, f.Integer):
        return {"type": "integer", "format": "int32" if ftype.limit <= 2 ** 31 else "int64"}
    if isinstance(ftype, f.Number):
        return {"type": "number"}
    if isinstance(ftype, f.Boolean):
        return {"type": "boolean"}
    if isinstance(ftype, f.DateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(ftype, f.Date):
        return {"type": "string", "format": "date"}
    if isinstance(ftype, f.Array):
        return filter_value_schema(ftype.item_type)
    if isinstance(ftype, f.Json):
        return {"type": "string", "description": "A JSON object."}
    return {"type": "string"}


# --------------------------------------------------------------- the builder

class _Builder:
    """One document under construction: components are shared, paths refer to them."""

    def __init__(self, api, app, info, operations):
        self.api = api
        self.app = app
        self.operations = operations or {}
        self.prefix = (api.blueprint.url_prefix or "").rstrip("/")
        self.schemas, self.parameters, self.responses, self.headers = {}, {}, {}, {}
        self.paths = {}
        self.operation_ids = set()
        self.doc = {
            "openapi": OPENAPI_VERSION,
            "info": dict(info),
            "servers": [{"url": self.prefix or "/"}],
            "security": [{"bearer": []}],
            # The JSON:API extensions (URIs) the server supports in `ext`; profiles are ignored.
            "x-jsonapi-extensions": sorted(SUPPORTED_EXTENSIONS),
            "tags": [],
            "paths": self.paths,
            "components": {"schemas": self.schemas, "parameters": self.parameters,
                           "responses": self.responses, "headers": self.headers,
                           "securitySchemes": {"bearer": {
                               "type": "http", "scheme": "bearer",
                               "description": "`Authorization: Bearer <token>` on every operation that "
                                              "does not say `security: []`."}}},
        }
        self.doc["info"]["description"] = (self.doc["info"].get("description", "").rstrip()
                                           + "\n\n" + self._query_language()).strip()

    # ---------------------------------------------------------- the routes

    def build(self):
        self._common_components()
        self.routes = self._url_map_routes()
        for resource in self.api.resources.values():
            self._resource_schemas(resource)
        self.schemas["Resource"] = {
            "description": "Any resource object (members of `included`).",
            "anyOf": [_ref("schemas", f"{_camel(t)}Resource") for t in self.api.resources]}
        for resource in self.api.resources.values():
            self._resource_paths(resource)
        for (path, method), (rule, parameters) in self.routes.items():
            if method.lower() not in self.paths.get(path, {}):
                self._route_operation(path, method, rule, parameters)
        for (path, method), (rule, _) in self.routes.items():
            operation = self.paths[path][method.lower()]
            for key in (rule.endpoint, rule.endpoint.rpartition(".")[2], f"{method} {path}"):
                override = self.operations.get(key)
                if override is not None and method in override.get("methods", (method,)):
                    self._apply_override(operation, override)
            # Any route of the blueprint answers 414 to a path and query string that are too long.
            operation["responses"] = dict(sorted({**operation["responses"], **self._errors("414")}.items()))
        self.doc["tags"] = self._tags()
        return self.doc

    def _url_map_routes(self):
        """{(path, METHOD): (rule, path parameters)} for every rule under the blueprint's prefix."""
        routes = {}
        for rule in sorted(self.app.url_map.iter_rules(), key=lambda r: r.rule):
            if rule.endpoint.rpartition(".")[2] == DOCS_STATIC_ENDPOINT:
                continue
            if not (rule.rule == self.prefix or rule.rule.startswith(self.prefix + "/")):
                continue
            path, parameters = openapi_path(rule.rule[len(self.prefix):] or "/")
            for method in sorted(rule.methods - _IGNORED_METHODS):
                routes[(path, method)] = (rule, parameters)
        return routes

    def _add(self, path, method, operation, path_parameters=()):
        """Add an operation if the app really has that route (the url_map is the truth)."""
        if (path, method) not in self.routes:
            return
        operation_id = operation.get("operationId")
        if operation_id:
            while operation_id in self.operation_ids:
                operation_id += "_"
            operation["operationId"] = operation_id
            self.operation_ids.add(operation_id)
        if path_parameters:
            operation["parameters"] = [*path_parameters, *operation.get("parameters", [])]
        self.paths.setdefault(path, {})[method.lower()] = operation

    def _tags(self):
        """Every tag the operations use; a resource's tag is described by its declaration's docstring."""
        names = sorted({tag for item in self.paths.values() for op in item.values() for tag in op.get("tags", ())})
        tags = []
        for name in names:
            resource = self.api.resources.get(name)
            description = self._resource_doc(resource) if resource is not None else ""
            tags.append({"name": name, **({"description": description} if description else {})})
        return tags

    @staticmethod
    def _resource_doc(resource):
        doc = type(resource).__doc__ or getattr(sys.modules.get(type(resource).__module__), "__doc__", "")
        return _first_paragraph(doc)

    # ---------------------------------------------------------- shared components

    def _common_components(self):
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        for status, (name, description) in ERRORS.items():
            if status == "413" and limit:
                description = f"The request body is larger than {limit} bytes."
            response = {"description": description,
                        "content": {JSONAPI_MEDIA_TYPE: {"schema": _ref("schemas", "ErrorDocument")}}}
            if status == "401":
                response["headers"] = {"WWW-Authenticate": _ref("headers", "WWW-Authenticate")}
            if status == "429":
                response["headers"] = {"Retry-After": _ref("headers", "Retry-After")}
            self.responses[name] = response
        self.headers.update({
            "ETag": {"description": "Version of the resource, for `If-Match` and `If-None-Match`.",
                     "schema": {"type": "string"}},
            "Location": {"description": "URL of the created resource.", "schema": {"type": "string"}},
            "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
            "WWW-Authenticate": {"description": "The authentication scheme expected.",
                                 "schema": {"type": "string"}},
        })
        self.parameters.update({
            "page.number": {"name": "page[number]", "in": "query", "description": "1-based page number.",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER,
                                       "default": 1}},
            "page.size": {"name": "page[size]", "in": "query",
                          "description": f"Items per page (at most {MAX_PAGE_SIZE}).",
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                                     "default": DEFAULT_PAGE_SIZE}},
            "page.after": {"name": "page[after]", "in": "query",
                           "description": "Cursor pagination, for walking a whole collection in id order at the "
                                          "same cost however deep: empty to start, then the cursor in "
                                          "`links.next`. Not with `page[number]` or a sort other than `id`.",
                           "schema": {"type": "string"}, "allowEmptyValue": True},
            "count": {"name": "count", "in": "query",
                      "description": "`true` adds `meta.count` (the total matching the filters, not the "
                                     "page length) and `links.last`.",
                      "schema": {"type": "boolean", "default": False}},
            "If-Match": {"name": "If-Match", "in": "header",
                         "description": "Only change the resource if its ETag still matches (else 412).",
                         "schema": {"type": "string"}},
            "If-None-Match": {"name": "If-None-Match", "in": "header",
                              "description": "Answer 304 if the resource still has this ETag.",
                              "schema": {"type": "string"}},
        })
        link = {"type": ["string", "null"], "format": "uri"}
        self.schemas.update({
            "JsonApi": {"type": "object", "properties": {"version": {"type": "string", "enum": ["1.1"]}}},
            "Meta": {"type": "object", "description": "Non-standard information.", "additionalProperties": True},
            "Error": {
                "type": "object", "required": ["status", "code", "title"],
                "properties": {
                    "status": {"type": "string", "description": "The HTTP status, as a string."},
                    "code": {"type": "string", "description": "A stable machine-readable word, e.g. "
                                                              "`invalid_filter`, `not_unique`, `not_found`."},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                    "source": {"type": "object", "properties": {
                        "pointer": {"type": "string", "description": "JSON Pointer into the request body."},
                        "parameter": {"type": "string", "description": "The query parameter at fault."},
                        "header": {"type": "string", "description": "The request header at fault."}}},
                    "meta": {"type": "object"}}},
            "ErrorDocument": {"type": "object", "required": ["errors"], "properties": {
                "errors": {"type": "array", "items": _ref("schemas", "Error"), "minItems": 1},
                "jsonapi": _ref("schemas", "JsonApi")}},
            "ResourceIdentifier": {"type": "object", "required": ["type", "id"], "properties": {
                "type": {"type": "string"}, "id": {"type": "string", "pattern": "^[0-9]+$"}}},
            "ResourceLinks": {"type": "object", "properties": {"self": {"type": "string", "format": "uri"}}},
            "RelationshipLinks": {"type": "object", "properties": {
                "self": {"type": "string", "format": "uri", "description": "The relationship endpoint."},
                "related": {"type": "string", "format": "uri", "description": "The related resource(s)."}}},
            "PageLinks": {"type": "object", "properties": {
                "self": link, "first": link, "prev": link, "next": link,
                "last": {**link, "description": "Only with `count=true`."}}},
            "CollectionMeta": {"type": "object", "properties": {
                "count": {"type": "integer", "description": "Total matching the filters (with `count=true`)."}}},
            "ToOneRelationship": {"type": "object", "properties": {
                "links": _ref("schemas", "RelationshipLinks"),
                "data": {"anyOf": [_ref("schemas", "ResourceIdentifier"), {"type": "null"}],
                         "description": "Present when included, or when the foreign key is on the row."}}},
            "ToManyRelationship": {"type": "object", "properties": {
                "links": _ref("schemas", "RelationshipLinks"),
                "data": {"type": "array", "items": _ref("schemas", "ResourceIdentifier"),
                         "description": "Present when included."}}},
            "ToOneLinkageDocument": {"type": "object", "required": ["data"], "properties": {
                "data": {"anyOf": [_ref("schemas", "ResourceIdentifier"), {"type": "null"}]},
                "links": _ref("schemas", "RelationshipLinks"), "jsonapi": _ref("schemas", "JsonApi")}},
            "ToManyLinkageDocument": {"type": "object", "required": ["data"], "properties": {
                "data": {"type": "array", "items": _ref("schemas", "ResourceIdentifier")},
                "links": {"allOf": [_ref("schemas", "PageLinks"), _ref("schemas", "RelationshipLinks")]},
                "meta": _ref("schemas", "CollectionMeta"), "jsonapi": _ref("schemas", "JsonApi")}},
            "ToOneLinkageRequest": {"type": "object", "required": ["data"], "properties": {
                "data": {"anyOf": [_ref("schemas", "ResourceIdentifier"), {"type": "null"}]}}},
            "ToManyLinkageRequest": {"type": "object", "required": ["data"], "properties": {
                "data": {"type": "array", "items": _ref("schemas", "ResourceIdentifier")}}},
            "Document": {"type": "object", "description": "A JSON:API document.", "properties": {
                "data": {}, "included": {"type": "array", "items": _ref("schemas", "Resource")},
                "links": {"type": "object"}, "meta": _ref("schemas", "Meta"),
                "jsonapi": _ref("schemas", "JsonApi")}},
        })

    def _query_language(self):
        return "\n".join([
            "## Query parameters",
            ("- `filter[NAME]` (equal) and `filter[NAME__OP]`: each operation lists the filters and "
             "operators it takes; filters are ANDed. A comma list means IN for `eq` and `neq`, and the "
             "value `null` means IS NULL. Filters reach related resources through their relationships: "
             "`filter[RELATIONSHIP.NAME__OP]`."),
            ("- List values may be comma-separated (`filter[id__in]=1,2`) or repeated bracket keys "
             "(`filter[id__in][]=1&filter[id__in][]=2`); a bracket item is never split on commas."),
            "- `sort=a,-b`: keys applied in order, `-` descending; `id` ascending always comes last.",
            (f"- `page[number]` (from 1) and `page[size]` (1 to {MAX_PAGE_SIZE}, default {DEFAULT_PAGE_SIZE}); "
             "`count=true` adds `meta.count` and `links.last`."),
            (f"- `include` or `included`: related resources to include, dotted paths at most "
             f"{MAX_INCLUDE_DEPTH} deep; `fields[TYPE]`: sparse fieldsets."),
            ("- Any other query parameter, an operator that does not fit a filter's type, or a value "
             "that does not parse is a 400 naming the parameter in `source.parameter`."),
        ])

    # ---------------------------------------------------------- resource schemas

    def _resource_schemas(self, resource):
        name = _camel(resource.type)
        properties, create_properties, required = {}, {}, []
        columns = resource.model.__table__.columns
        links = _link_spellings(resource)  # required attribute -> the other ways a create may give it
        link_rules = []
        for field_name, field in resource.schema_class._declared_fields.items():
            if field_name == "id" or isinstance(field, Rel):
                continue
            schema = field_schema(field)
            column = columns.get(field.attribute or field_name)
            # What the server fills in is rendered as stored: null where the column allows it.
            properties[field_name] = (_nullable(schema) if field.dump_only and column is not None
                                      and column.nullable else schema)
            if not field.dump_only:
                create_properties[field_name] = schema
                if field.required and field_name in links:
                    spellings, said = links[field_name]
                    create_properties[field_name] = {**schema, "description": " ".join(
                        filter(None, [schema.get("description"), f"Required on create, {said}."]))}
                    link_rules.append({"anyOf": spellings})
                elif field.required:
                    required.append(field_name)
        relationships, writable = {}, {}
        for rel in resource.relationships.values():
            kind = "ToManyRelationship" if rel.many else "ToOneRelationship"
            relationships[rel.name] = {"allOf": [_ref("schemas", kind)],
                                       "description": f"{rel.type} ({'to-many' if rel.many else 'to-one'})."}
            if rel.settable:
                fk = resource.attribute_field_names.get(rel.fk, rel.fk)
                linkage = ({"allOf": [_ref("schemas", "ToOneLinkageRequest")]} if resource.link_nullable(rel) else
                           {"type": "object", "required": ["data"],
                            "properties": {"data": _ref("schemas", "ResourceIdentifier")}})
                writable[rel.name] = {**linkage, "description": (
                    f"The link `{fk}` ({rel.type}) spelled as linkage: give either or both (then they "
                    f"must agree){'' if resource.link_nullable(rel) else '; never null'}.")}
        types = [resource.type, *resource.aliases]
        self.schemas[f"{name}Attributes"] = {"type": "object", "properties": properties}
        self.schemas[f"{name}Resource"] = {
            "type": "object", "required": ["type", "id"],
            "properties": {"type": {"type": "string", "enum": [resource.type]},
                           "id": {"type": "string", "pattern": "^[0-9]+$"},
                           "attributes": _ref("schemas", f"{name}Attributes"),
                           "relationships": {"type": "object", "properties": relationships},
                           "links": _ref("schemas", "ResourceLinks")}}
        common = {"jsonapi": _ref("schemas", "JsonApi"), "meta": _ref("schemas", "Meta"),
                  "included": {"type": "array", "items": _ref("schemas", "Resource"),
                               "description": "Every included resource once."}}
        self.schemas[f"{name}Document"] = {
            "type": "object", "required": ["data"],
            "properties": {"data": _ref("schemas", f"{name}Resource"),
                           "links": _ref("schemas", "ResourceLinks"), **common}}
        self.schemas[f"{name}Collection"] = {
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "array", "items": _ref("schemas", f"{name}Resource")},
                           "links": _ref("schemas", "PageLinks"), **common,
                           "meta": _ref("schemas", "CollectionMeta")}}
        self.schemas[f"{name}RelatedDocument"] = {
            "type": "object", "required": ["data"],
            "properties": {"data": {"anyOf": [_ref("schemas", f"{name}Resource"), {"type": "null"}]},
                           "links": _ref("schemas", "ResourceLinks"), **common}}
        data_common = {"type": {"type": "string", "enum": types}, "meta": {"description": "Not read."}}
        if writable:
            data_common["relationships"] = {"type": "object", "properties": writable, "additionalProperties": False}
        # Any other member of data (400) or attribute (422), an id on create (403) is refused.
        self.schemas[f"{name}CreateRequest"] = {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object", "required": ["type", "attributes"] if required else ["type"],
                **({"allOf": link_rules} if link_rules else {}),
                "additionalProperties": False, "properties": {
                    **data_common,
                    "attributes": {"type": "object", "properties": create_properties, "additionalProperties": False,
                                   **({"required": required} if required else {})}}}}}
        self.schemas[f"{name}UpdateRequest"] = {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object", "required": ["type", "id"], "additionalProperties": False, "properties": {
                    **data_common,
                    "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Must match the id in the URL."},
                    "attributes": {"type": "object", "properties": create_properties,
                                   "additionalProperties": False}}}}}

    # ---------------------------------------------------------- resource parameters

    def _include_paths(self, resource):
        paths = []

        def walk(current, prefix):
            if len(prefix) == MAX_INCLUDE_DEPTH:
                return
            for rel in current.relationships.values():
                if rel.includable:
                    path = (*prefix, rel.name)
                    paths.append(".".join(path))
                    walk(self.api.resource(rel.type), path)

        walk(resource, ())
        return paths

    def _single_parameters(self, resource):
        """include/included and fields[TYPE] for every type the includes can reach."""
        parameters = []
        includes = self._include_paths(resource)
        if includes:
            for name in ("include", "included"):
                key = f"{resource.type}.{name}"
                if key not in self.parameters:
                    self.parameters[key] = {
                        "name": name, "in": "query", "style": "form", "explode": False,
                        "description": "Related resources to include (dotted paths nest)."
                        + (" Same as `include`; the Pulse name." if name == "included" else "")
                        + " Give `include` or `included`, not both.",
                        "schema": {"type": "array", "items": {"type": "string", "enum": includes}}}
                parameters.append(_ref("parameters", key))
        types = [resource.type]
        for path in includes:
            current = resource
            for rel_name in path.split("."):
                current = self.api.resource(current.relationships[rel_name].type)
            if current.type not in types:
                types.append(current.type)
        for type_name in types:
            key = f"fields.{type_name}"
            if key not in self.parameters:
                names = sorted(self.api.resource(type_name).fieldset_names)
                self.parameters[key] = {
                    "name": f"fields[{type_name}]", "in": "query", "style": "form", "explode": False,
                    "description": f"Sparse fieldset: the attributes and relationships of {type_name} to render.",
                    "schema": {"type": "array", "items": {"type": "string", "enum": names}}}
            parameters.append(_ref("parameters", key))
        return parameters

    def _filter_parameters(self, resource):
        parameters = []
        for filter_ in resource.filters.values():
            for op in filter_.ops:
                key = filter_.name if op == "eq" else f"{filter_.name}__{op}"
                component = f"{resource.type}.filter.{key}"
                if component not in self.parameters:
                    self.parameters[component] = self._filter_parameter(filter_, op, key)
                parameters.append(_ref("parameters", component))
        return parameters

    @staticmethod
    def _filter_parameter(filter_, op, key):
        value = filter_value_schema(filter_.type)
        described = OPERATOR_DOC.get(op, op)
        if op == "exists":
            schema = {"type": "boolean"}
        elif op in ("in", "nin") or (op == "contains" and filter_.splits(op)):
            schema = {"type": "array", "items": value}
            if value != {"type": "string"}:  # an empty list reads as [""]: not a value of this type
                schema["minItems"] = 1
            described += " (comma-separated or repeated `[]` keys)"
        else:
            schema = value
        if op in ("eq", "neq") and filter_.splits(op):
            described += "; a comma list means " + ("IN" if op == "eq" else "NOT IN")
        if op in ("eq", "neq") and filter_.takes_null:
            described += "; `null` means " + ("IS NULL" if op == "eq" else "IS NOT NULL")
            schema = _nullable(schema)
        text = f"{filter_.doc} " if filter_.doc else ""
        text += f"`{filter_.name}` ({filter_.type.describe()}): {described}."
        parameter = {"name": f"filter[{key}]", "in": "query", "description": text, "schema": schema}
        if schema.get("type") == "array":
            parameter.update(style="form", explode=False)
        return parameter

    def _collection_parameters(self, resource):
        sort_key = f"{resource.type}.sort"
        if sort_key not in self.parameters:
            names = sorted(resource.sorts)
            self.parameters[sort_key] = {
                "name": "sort", "in": "query", "style": "form", "explode": False,
                "description": "Sort keys in order, `-` for descending; `id` ascending is always the last key. "
                               "Each field at most once.",
                "schema": {"type": "array", "minItems": 1, "uniqueItems": True,
                           "items": {"type": "string", "enum": [*names, *(f"-{n}" for n in names)]}}}
        return [*self._filter_parameters(resource), _ref("parameters", sort_key),
                _ref("parameters", "page.number"), _ref("parameters", "page.size"), _ref("parameters", "page.after"),
                _ref("parameters", "count")]

    # ---------------------------------------------------------- resource operations

    @staticmethod
    def _json(schema_name, description):
        return {"description": description,
                "content": {JSONAPI_MEDIA_TYPE: {"schema": _ref("schemas", schema_name)}}}

    @staticmethod
    def _body(schema, required=True):
        return {"required": required, "content": {m: {"schema": schema} for m in REQUEST_MEDIA_TYPES}}

    @staticmethod
    def _errors(*statuses):
        return {status: _ref("responses", ERRORS[status][0]) for status in statuses}

    def _resource_paths(self, resource):
        t, name = resource.type, _camel(resource.type)
        collection, item = f"/{t}", f"/{t}/{{id}}"
        id_parameter = [openapi_path("<int:id>")[1][0]]
        tags = [t]
        etag = {"ETag": _ref("headers", "ETag")}
        single_params = self._single_parameters(resource)
        if "list" in resource.actions:
            self._add(collection, "GET", {
                "tags": tags, "operationId": f"{t}_list", "summary": f"List {t}",
                "parameters": [*self._collection_parameters(resource), *single_params],
                "responses": {"200": self._json(f"{name}Collection", f"A page of {t}."),
                              **self._errors("400", "401", "403", "406")}})
        if "create" in resource.actions:
            created = self._json(f"{name}Document", "The created resource.")
            created["headers"] = {**etag, "Location": _ref("headers", "Location")}
            self._add(collection, "POST", {
                "tags": tags, "operationId": f"{t}_create", "summary": f"Create a {t} resource",
                "parameters": single_params,
                "requestBody": self._body(_ref("schemas", f"{name}CreateRequest")),
                "responses": {"201": created,
                              **self._errors("400", "401", "403", "406", "409", "413", "415", "422")}})
        if "show" in resource.actions:
            shown = self._json(f"{name}Document", "The resource.")
            shown["headers"] = etag
            self._add(item, "GET", {
                "tags": tags, "operationId": f"{t}_show", "summary": f"Show a {t} resource",
                "parameters": [*single_params, _ref("parameters", "If-None-Match")],
                "responses": {"200": shown, "304": {"description": "Not modified (`If-None-Match`)."},
                              **self._errors("400", "401", "403", "404", "406")}}, id_parameter)
        if "update" in resource.actions:
            updated = self._json(f"{name}Document", "The updated resource.")
            updated["headers"] = etag
            self._add(item, "PATCH", {
                "tags": tags, "operationId": f"{t}_update", "summary": f"Update a {t} resource",
                "description": "Only the attributes sent change.",
                "parameters": [*single_params, _ref("parameters", "If-Match")],
                "requestBody": self._body(_ref("schemas", f"{name}UpdateRequest")),
                "responses": {"200": updated, **self._errors("400", "401", "403", "404", "406", "409", "412",
                                                              "413", "415", "422")}}, id_parameter)
        if "delete" in resource.actions:
            self._add(item, "DELETE", {
                "tags": tags, "operationId": f"{t}_delete", "summary": f"Delete a {t} resource",
                "parameters": [_ref("parameters", "If-Match")],
                "responses": {"204": {"description": "Deleted."},
                              **self._errors("400", "401", "403", "404", "406", "409", "412")}}, id_parameter)
        for rel in resource.relationships.values():
            self._relationship_paths(resource, rel, id_parameter)

    def _relationship_paths(self, resource, rel, id_parameter):
        t, target = resource.type, self.api.resource(rel.type)
        target_name = _camel(rel.type)
        related, linkage = f"/{t}/{{id}}/{rel.name}", f"/{t}/{{id}}/relationships/{rel.name}"
        tags = [t]
        reads = self._errors("400", "401", "403", "404", "406")
        if rel.many:
            self._add(related, "GET", {
                "tags": tags, "operationId": f"{t}_{rel.name}_related",
                "summary": f"List the {rel.name} of a {t} resource",
                "parameters": [*self._collection_parameters(target), *self._single_parameters(target)],
                "responses": {"200": self._json(f"{target_name}Collection", f"A page of {rel.type}."), **reads}},
                id_parameter)
            self._add(linkage, "GET", {
                "tags": tags, "operationId": f"{t}_{rel.name}_linkage",
                "summary": f"Identifiers of the {rel.name} ({rel.type})",
                "parameters": self._collection_parameters(target),
                "responses": {"200": self._json("ToManyLinkageDocument", f"A page of {rel.type} identifiers."),
                              **reads}}, id_parameter)
        else:
            self._add(related, "GET", {
                "tags": tags, "operationId": f"{t}_{rel.name}_related", "summary": f"The {rel.name} of a {t} resource",
                "parameters": self._single_parameters(target),
                "responses": {"200": self._json(f"{target_name}RelatedDocument", f"The {rel.type} resource, "
                                                "or null."), **reads}}, id_parameter)
            self._add(linkage, "GET", {
                "tags": tags, "operationId": f"{t}_{rel.name}_linkage",
                "summary": f"Identifier of the {rel.name} ({rel.type})",
                "responses": {"200": self._json("ToOneLinkageDocument", f"The {rel.type} identifier, or null."),
                              **reads}}, id_parameter)
        writes = self._errors("400", "401", "403", "404", "406", "409", "412", "413", "415", "422")
        handler = getattr(resource, "write_relationship", None)
        if rel.many and rel.writable and handler is not None:
            # The handler's docstring tells clients what the body may hold; a Returns line is about the code.
            doc = "\n".join(line for line in (inspect.getdoc(handler) or "").splitlines()
                             if not line.startswith("Returns"))
            meanings = {"PATCH": f"Replace the {rel.name}", "POST": f"Add to the {rel.name}",
                        "DELETE": f"Remove from the {rel.name}"}
            for method, summary in meanings.items():
                self._add(linkage, method, {
                    "tags": tags, "operationId": f"{t}_{rel.name}_{method.lower()}", "summary": summary,
                    "description": doc, "parameters": [_ref("parameters", "If-Match")],
                    "requestBody": self._body(_ref("schemas", "ToManyLinkageRequest")),
                    "responses": {"204": {"description": "Done."}, **writes}}, id_parameter)
            return
        if not rel.many and rel.writable and rel.fk is not None:
            self._add(linkage, "PATCH", {
                "tags": tags, "operationId": f"{t}_{rel.name}_patch", "summary": f"Set the {rel.name}",
                "description": f"Sets `{rel.fk}`; `null` clears it.",
                "parameters": [_ref("parameters", "If-Match")],
                "requestBody": self._body(_ref("schemas", "ToOneLinkageRequest")),
                "responses": {"204": {"description": "Done."}, **writes}}, id_parameter)
        # The engine routes every write method to every relationship endpoint; say what the
        # ones that cannot succeed answer, so the document covers every route.
        for method in ("PATCH", "POST", "DELETE"):
            if (linkage, method) not in self.routes or method.lower() in self.paths.get(linkage, {}):
                continue
            if not rel.many and method != "PATCH":
                summary, status = "Not supported: a to-one relationship is replaced with PATCH", "405"
            else:
                summary, status = f"Not supported: {t}.{rel.name} cannot be changed here", "403"
            self._add(linkage, method, {
                "tags": tags, "operationId": f"{t}_{rel.name}_{method.lower()}", "summary": summary,
                "responses": self._errors("400", "401", "404", status)}, id_parameter)

    # ---------------------------------------------------------- other routes

    def _route_operation(self, path, method, rule, path_parameters):
        """Any other route of the blueprint: what the url_map and the view's docstring tell."""
        view = self.app.view_functions.get(rule.endpoint)
        segments = [s for s in path.split("/") if s]
        tag = segments[0] if segments else "default"
        endpoint = rule.endpoint.rpartition(".")[2]
        operation = {"tags": [tag], "operationId": f"{endpoint}_{method.lower()}" if len(
            rule.methods - _IGNORED_METHODS) > 1 else endpoint,
            "summary": _first_paragraph(getattr(view, "__doc__", None)) or f"{method} {path}",
            "responses": {"200": self._json("Document", "A JSON:API document."),
                          **self._errors("400", "401", "403", "406")}}
        if path_parameters:
            operation["responses"].update(self._errors("404"))
        if method in ("POST", "PUT", "PATCH"):
            operation["requestBody"] = self._body({"type": "object"}, required=False)
            operation["responses"].update(self._errors("413", "415", "422"))
        self._add(path, method, operation, path_parameters)

    def _apply_override(self, operation, override):
        for key in ("summary", "description", "tags"):
            if key in override:
                operation[key] = override[key]
        if override.get("public"):
            operation["security"] = []
            for status in ("401", "403"):
                operation["responses"].pop(status, None)
        if "resource" in override:
            resource = self.api.resource(override["resource"])
            operation["parameters"] = [*operation.get("parameters", []), *self._single_parameters(resource)]
            operation["responses"]["200"] = self._json(f"{_camel(resource.type)}Document",
                                                       f"The {resource.type} resource.")
        if "body" in override:
            if override["body"] is None:
                operation.pop("requestBody", None)
                for status in ("413", "415", "422"):
                    operation["responses"].pop(status, None)
            else:
                operation["requestBody"] = self._body(override["body"])
                operation["responses"].update(self._errors("413", "415", "422"))
        if override.get("parameters"):
            operation["parameters"] = [*operation.get("parameters", []), *override["parameters"]]
        responses = override.get("responses", {})
        if any(str(status)[0] in "23" for status in responses):
            for status in [s for s in operation["responses"] if s[0] in "23"]:
                del operation["responses"][status]
        for status, response in responses.items():
            if response is None:
                operation["responses"].pop(str(status), None)
            else:
                operation["responses"][str(status)] = (
                    {"description": response} if isinstance(response, str) else response)
        operation["responses"].update(self._errors(*override.get("errors", ())))
        operation["responses"] = dict(sorted(operation["responses"].items()))


def build_openapi(api, app, info, operations=None):
    """The OpenAPI 3.1 document of `api` as registered on `app` (see the module docstring)."""
    return _Builder(api, app, info, operations).build()


# --------------------------------------------------------------- Swagger UI

def downgrade_to_30(document):
    """A copy of a document from this module in OpenAPI 3.0 terms, for Swagger UI 4.x.

    swagger-ui-bundle 1.x ships Swagger UI 4, which renders 3.0 only. The differences this
    module produces are nullability (type lists and `{"type": "null"}` alternatives),
    numeric exclusive bounds and the version number; the 3.1 document stays the published one.
    """
    def convert(node):
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: convert(value) for key, value in node.items()}
        kind = node.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            if len(kinds) < len(kind):
                node["nullable"] = True
            if len(kinds) == 1:
                node["type"] = kinds[0]
            else:
                del node["type"]
                node["anyOf"] = [{"type": k} for k in kinds]
        for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(node.get(bound), (int, float)) and not isinstance(node[bound], bool):
                node[inclusive], node[bound] = node[bound], True
        for combinator in ("anyOf", "oneOf"):
            options = node.get(combinator)
            if isinstance(options, list) and {"type": "null"} in options:
                rest = [option for option in options if option != {"type": "null"}]
                del node[combinator]
                node["nullable"] = True
                if len(rest) == 1:
                    node["allOf"] = rest
                else:
                    node[combinator] = rest
        return node

    converted = convert(document)
    converted["openapi"] = "3.0.3"
    return converted


_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
  <noscript>This page needs JavaScript; the document itself is at <a href="{spec_url}">openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script id="openapi-document" type="application/json">{spec}</script>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <!-- init.js starts SwaggerUIBundle on #swagger-ui with the document above -->
  <script src="{init_url}"></script>
</body>
</html>
"""

# A file, not an inline script, so a Content-Security-Policy of `script-src 'self'` lets the page run.
# (The 3.0 rendition of the document sits in a JSON data block above, which is never run.)
_DOCS_INIT = """\
window.ui = SwaggerUIBundle({
  spec: JSON.parse(document.getElementById("openapi-document").textContent),
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"""


def _script_json(value):
    """JSON that cannot end the <script> element it sits in."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def register_docs(api, info, swagger_ui_path, operations=None, page_headers=None):
    """Serve the document at /openapi.json and Swagger UI at /docs on the api's blueprint.

    `swagger_ui_path` is the folder of Swagger UI 4's dist files (swagger-ui-bundle's
    `swagger_ui_path`), served at /docs/static so the page needs nothing from elsewhere. The
    page has no inline script (it starts Swagger UI from /docs/init.js); `page_headers` go on
    its answer (an application's Content-Security-Policy for it, say).
    """
    bp = api.blueprint
    key = f"openapi:{bp.name}"
    own = {
        "openapi_json": {"public": True, "tags": ["documentation"], "summary": "This OpenAPI 3.1 document",
                         "responses": {"200": {"description": "The OpenAPI document.", "content": {
                             OPENAPI_MEDIA_TYPE: {"schema": {"type": "object"}}}}, "400": None, "406": None}},
        "docs": {"public": True, "tags": ["documentation"], "summary": "This document in Swagger UI",
                 "description": "Works offline: every asset is served by this server.",
                 "responses": {"200": {"description": "An HTML page.",
                                       "content": {"text/html": {"schema": {"type": "string"}}}},
                               "400": None, "406": None}},
        "docs_init": {"public": True, "tags": ["documentation"], "summary": "The docs page's script, which starts "
                      "Swagger UI", "responses": {"200": {"description": "JavaScript.", "content": {
                          "text/javascript": {"schema": {"type": "string"}}}}, "400": None, "406": None}},
    }
    operations = {**own, **(operations or {})}

    def cached():
        """Built on first use, once per app: the url_map is complete by then."""
        app = current_app._get_current_object()
        entry = app.extensions.get(key)
        if entry is None:
            document = build_openapi(api, app, info, operations)
            entry = app.extensions[key] = {"document": document,
                                           "json": json.dumps(document, separators=(",", ":"))}
        return entry

    def openapi_json():
        """The OpenAPI 3.1 document."""
        return Response(cached()["json"], mimetype=OPENAPI_MEDIA_TYPE)

    def docs():
        """Swagger UI, rendering the document with assets served from this app."""
        entry = cached()
        if "html" not in entry:
            entry["html"] = _DOCS_PAGE.format(
                title=str(entry["document"]["info"].get("title", "API")).replace("<", "&lt;"),
                static=url_for(f"{bp.name}.{DOCS_STATIC_ENDPOINT}", filename="").rstrip("/"),
                spec_url=url_for(f"{bp.name}.openapi_json"), init_url=url_for(f"{bp.name}.docs_init"),
                spec=_script_json(downgrade_to_30(entry["document"])))
        return Response(entry["html"], mimetype="text/html", headers=page_headers)

    def docs_init():
        return Response(_DOCS_INIT, mimetype="text/javascript")

    def docs_static(filename):
        return send_from_directory(swagger_ui_path, filename)

    bp.add_url_rule("/openapi.json", "openapi_json", openapi_json, methods=["GET"])
    bp.add_url_rule("/docs", "docs", docs, methods=["GET"])
    bp.add_url_rule("/docs/init.js", "docs_init", docs_init, methods=["GET"])
    bp.add_url_rule("/docs/static/<path:filename>", DOCS_STATIC_ENDPOINT, docs_static, methods=["GET"])


__all__ = ["build_openapi", "downgrade_to_30", "field_schema", "openapi_path", "register_docs", "schema_ref"]
