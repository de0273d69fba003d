"""Resource: one declaration per JSON:API type, from which queries and writes are derived.

A resource names its model and schema; attributes (with their filter types), sorts,
relationships and fieldsets are derived from those two, and the declaration adds only
what cannot be derived: custom filters, type overrides, uniqueness rules and hooks.

Every query of a resource starts at `base_select(ctx)`, which applies the policy's
visibility predicate, so lists, counts, shows, includes, relationship reads and the
existence checks of ids in bodies all see the same rows.
"""
import threading
from dataclasses import dataclass

import marshmallow as ma
from marshmallow import ValidationError, validate as ma_validate
from sqlalchemy import Boolean as SABoolean, Date as SADate, DateTime as SADateTime, Float as SAFloat
from sqlalchemy import BigInteger as SABigInteger, Integer as SAInteger, JSON as SAJSON, Numeric as SANumeric
from sqlalchemy import String as SAString, and_, func, inspect, select
from sqlalchemy.ext.hybrid import HybridExtensionType
from sqlalchemy.orm import load_only, selectinload
from sqlalchemy.types import TypeDecorator

from . import filters as f
from .errors import JsonApiError, JsonApiErrors, bad_request, conflict, invalid_field, json_pointer
from .connections import connection_for
from .driver import ROW_READ
from .rows import CHUNK_SIZE as INCLUDE_CHUNK_SIZE, RowPlan
from .schema import Rel


@dataclass
class Relationship:
    name: str
    type: str
    many: bool
    fk: str | None
    attribute: str           # the model's relationship attribute
    includable: bool
    filterable: bool
    writable: bool           # through its relationship endpoint (to-one: PATCH; to-many: the resource's writer)
    settable: bool = False   # in a create/update body: a to-one whose foreign key the body may write


def _infer_type(column_type, field):
    """The filter type of an attribute, from its marshmallow field and its column."""
    if isinstance(field, ma.fields.List):
        return f.Array()
    for validator in field.validators:
        if isinstance(validator, ma_validate.OneOf):
            return f.Enum(validator.choices)
    while isinstance(column_type, TypeDecorator):
        column_type = column_type.impl
    if isinstance(column_type, SABoolean):
        return f.Boolean()
    if isinstance(column_type, SABigInteger):
        return f.Integer(bits=64)
    if isinstance(column_type, SAInteger):
        return f.Integer()
    if isinstance(column_type, (SAFloat, SANumeric)):
        return f.Number()
    if isinstance(column_type, SADateTime):
        return f.DateTime()
    if isinstance(column_type, SADate):
        return f.Date()
    if isinstance(column_type, SAJSON):
        return f.Json()
    if isinstance(column_type, SAString):
        return f.String()
    return None


class WriteState:
    """What a create or update is about to write, and where each value came from in the body."""

    def __init__(self, resource, ctx, values, pointers, obj):
        self.resource = resource
        self.ctx = ctx
        self.values = values
        self.pointers = pointers
        self.obj = obj
        self.meta = {}  # added to the response document's meta (e.g. a secret shown once)
        self.after_commit = []  # callables run once the write is committed (e.g. sending mail)
        self.derived = {}  # what a resource's validate works out for its create/update (e.g. a parent row)

    @property
    def creating(self):
        return self.obj is None

    def get(self, attr, default=None):
        """The value after this write: the new one if given, else the stored one."""
        if attr in self.values:
            return self.values[attr]
        if self.obj is not None:
            return getattr(self.obj, attr)
        return default

    def changed(self, attr):
        return attr in self.values and (self.obj is None or getattr(self.obj, attr) != self.values[attr])

    def pointer(self, attr):
        return self.pointers.get(attr) or f"/data/attributes/{self.resource.attribute_field_names.get(attr, attr)}"

    def error(self, attr, detail, code="invalid_value"):
        return invalid_field(self.pointer(attr), detail, code=code)


class Resource:
    """Subclass and set the class attributes; the engine instantiates it once at registration.

    The model needs an integer primary key `id` and an integer `version` used as SQLAlchemy's
    `version_id_col`: it backs the ETag and makes concurrent updates fail cleanly (412).
    """

    type: str = None
    aliases: tuple = ()
    model = None
    schema = None
    extra_filters: tuple = ()                 # Filter declarations beyond the attributes
    attribute_types: dict = {}                # attribute -> FieldType, where inference is not enough
    sort_expressions: dict = {}               # extra sort keys -> SQL expression
    unique: dict = {}                         # attribute -> fn(value) -> predicate meaning "taken"
    # attribute -> (to-one relationship, attribute of its target): on create, the attribute left out
    # is the value the related row (one the caller can see) holds, e.g. a row's tenant from its parent's.
    implied_by: dict = {}
    actions = ("list", "show", "create", "update", "delete")

    def __init__(self, registry):
        self.registry = registry
        self.schema_class = self.schema
        self._schemas = threading.local()  # each thread's schema instance for loading bodies
        self.mapper = inspect(self.model)
        self.attributes = {}              # name -> (model attribute name, FieldType)
        self.attribute_field_names = {}   # model attribute name -> schema field name
        self.field_attributes = {}        # rendered schema field name -> model attribute name
        self.relationships = {}
        fieldset = set()
        declared = self.schema_class._declared_fields
        for name, field in declared.items():
            if name == "id":
                continue
            if isinstance(field, Rel):
                attribute = field.attribute or name
                self.relationships[name] = Relationship(
                    name, field.type_, field.many, field.fk, attribute, field.includable,
                    field.filterable, field.writable)
                fieldset.add(name)
                continue
            attr = field.attribute or name
            self.attribute_field_names[attr] = name
            if field.load_only:
                continue  # secrets: never rendered, never filtered or sorted on
            fieldset.add(name)
            self.field_attributes[name] = attr
            ftype = self.attribute_types.get(name)
            column = getattr(self.model, attr, None)
            if ftype is None and attr in self.mapper.columns:
                ftype = _infer_type(self.mapper.columns[attr].type, field)
            if ftype is not None and column is not None:
                self.attributes[name] = (attr, ftype)
        self.fieldset_names = frozenset(fieldset)
        # A to-one relationship and its foreign key attribute are two spellings of one value: the
        # body may give the relationship wherever it may give the attribute (or the relationship
        # is declared writable).
        for rel in self.relationships.values():
            fk_field = declared.get(self.attribute_field_names.get(rel.fk, rel.fk)) if rel.fk else None
            rel.settable = rel.fk is not None and not rel.many and (
                rel.writable or (fk_field is not None and not fk_field.dump_only))
        self.hybrids = frozenset(name for name, descriptor in self.mapper.all_orm_descriptors.items()
                                 if descriptor.extension_type is HybridExtensionType.HYBRID_PROPERTY)

        self.filters = {}
        self.filters["id"] = f.Filter("id", f.Integer(), column=self.model.id, nullable=False)
        for name, (attr, ftype) in self.attributes.items():
            column = getattr(self.model, attr)
            nullable = attr not in self.mapper.columns or self.mapper.columns[attr].nullable
            self.filters[name] = f.Filter(name, ftype, column=column, nullable=bool(nullable))
        for declared_filter in self.extra_filters:
            self.filters[declared_filter.name] = declared_filter

        self.sorts = {"id": self.model.id}
        for name, (attr, ftype) in self.attributes.items():
            if ftype.sortable:
                self.sorts[name] = getattr(self.model, attr)
        self.sorts.update(self.sort_expressions)

    # ----------------------------------------------------------------- reading

    def find_filter(self, key):
        """`name` or `name__op` -> (Filter, op); declared names win (`id__in` is id + in)."""
        if key in self.filters:
            return self.filters[key], "eq"
        name, sep, op = key.rpartition("__")
        if sep and op in f.OPERATORS and name in self.filters:
            return self.filters[name], op
        return None, None

    def visible(self, ctx):
        """The policy's predicate for what `ctx.principal` may see of this type (None: all)."""
        return self.registry.policy.visible(ctx, self)

    def base_select(self, ctx, stmt=None):
        """`stmt` (default: the model's rows) narrowed to what the caller may see."""
        stmt = select(self.model) if stmt is None else stmt
        predicate = self.visible(ctx)
        return stmt if predicate is None else stmt.where(predicate)

    def filter_predicates(self, spec, ctx):
        return [self._through(fs.path, fs.filter.to_sql(fs.op, fs.values, ctx), ctx) for fs in spec.filters]

    def _through(self, path, predicate, ctx):
        """Wrap a predicate on the last resource of `path` in EXISTS hops back to this one."""
        hops, current = [], self
        for name in path:
            rel = current.relationships[name]
            target = self.registry.resource(rel.type)
            hops.append((getattr(current.model, rel.attribute), rel.many, target))
            current = target
        for attr, many, target in reversed(hops):
            visible = target.visible(ctx)
            inner = predicate if visible is None else and_(predicate, visible)
            predicate = attr.any(inner) if many else attr.has(inner)
        return predicate

    def order_by(self, spec):
        clauses, has_id = [], False
        for item in spec.sort:
            expr = self.sorts[item.name]
            has_id = has_id or item.name == "id"
            clauses.append(expr.desc().nulls_first() if item.descending else expr.asc().nulls_last())
        if not has_id:
            clauses.append(self.model.id.asc())
        return clauses

    def render_columns(self, names, heads=()):
        """The model columns that render the fields `names` (None: every field) and lead to the
        relationships `heads`: the id, the named attributes and the foreign keys of the named
        or followed to-one relationships. None when a named attribute is neither a column nor
        a hybrid property (the row path selects a hybrid's SQL expression in its place)."""
        columns = {"id"}
        for name in set(self.fieldset_names if names is None else names) | set(heads):
            rel = self.relationships.get(name)
            if rel is not None:
                if rel.fk is not None:
                    columns.add(rel.fk)
                continue
            attr = self.field_attributes.get(name)
            if attr is None or not (attr in self.mapper.columns or attr in self.hybrids):
                return None
            columns.add(attr)
        return columns

    def sparse_columns(self, spec):
        """The columns a sparse fieldset needs when the ORM loads the rows (None: every column),
        so a sparse page the row path cannot serve still does not read every column."""
        names = spec.fields.get(self.type)
        if names is None:
            return None
        columns = self.render_columns(names, {path[0] for path in spec.include})
        if columns is None or columns & self.hybrids:
            return None
        columns |= {"version"} & set(self.mapper.columns.keys())
        return [getattr(self.model, column) for column in sorted(columns)]

    def loader_options(self, spec, ctx):
        """One selectinload chain per included path, each restricted to what the caller may see;
        only the columns a sparse fieldset needs."""
        options = []
        columns = self.sparse_columns(spec)
        if columns is not None:
            options.append(load_only(*columns, raiseload=False))
        for path in spec.include:
            loader, current = None, self
            for name in path:
                rel = current.relationships[name]
                target = self.registry.resource(rel.type)
                attr = getattr(current.model, rel.attribute)
                visible = target.visible(ctx)
                if visible is not None:
                    attr = attr.and_(visible)
                loader = (selectinload(attr, chunksize=INCLUDE_CHUNK_SIZE) if loader is None
                          else loader.selectinload(attr, chunksize=INCLUDE_CHUNK_SIZE))
                current = target
            options.append(loader)
        return options

    def query_page(self, spec, ctx, extra_predicates=()):
        """(rows, has_next, total or None) for a collection request, all filtering in SQL."""
        predicates = [*extra_predicates, *self.filter_predicates(spec, ctx)]
        visible = self.visible(ctx)
        if visible is not None:
            predicates.insert(0, visible)
        session = ctx.session
        total = None
        if spec.count:  # everything that matches, wherever a cursor stands
            total = connection_for(session).execute(select(func.count()).select_from(self.model).where(*predicates),
                                                 execution_options=ROW_READ).scalar()
        if spec.after is not None:
            predicates.append(self.model.id > spec.after)  # keyset: no offset to skip, however deep
        plan = RowPlan.build(self, spec)
        stmt = select(self.model).options(*self.loader_options(spec, ctx)) if plan is None else plan.select_for(ctx)
        stmt = (stmt.where(*predicates).order_by(*self.order_by(spec))
                .offset(spec.offset).limit(spec.page_size + 1))
        if plan is not None:
            rows, has_next = plan.read(session, ctx, stmt, limit=spec.page_size)
            return rows, has_next, total
        rows = session.scalars(stmt).all()
        return rows[: spec.page_size], len(rows) > spec.page_size, total

    def read(self, ctx, id_, spec):
        """The row with this id, read for rendering as `spec` asks (plain rows where they
        suffice, see rows.py), if the caller may see it; else a 404."""
        plan = RowPlan.build(self, spec, extra={"version"} & set(self.mapper.columns.keys()))
        if plan is None:
            return self.get(ctx, id_, spec)
        self._check_id(id_)
        visible = self.visible(ctx)
        if visible is None:
            rows = plan.read_id(ctx.session, ctx, id_)
        else:
            rows, _ = plan.read(ctx.session, ctx, plan.select_for(ctx).where(visible, self.model.id == id_))
        if not rows:
            raise self.not_found(id_)
        return rows[0]

    def _check_id(self, id_):
        """A 404 for an id no row can have."""
        if not isinstance(id_, int) or not 0 < id_ < 2 ** 31:
            raise self.not_found(id_)

    def _id_is(self, id_):
        """The predicate "the row with this id" (a 404 for an id no row can have)."""
        self._check_id(id_)
        return self.model.id == id_

    def get(self, ctx, id_, spec=None, for_update=False):
        """The row with this id if the caller may see it, else a 404."""
        stmt = self.base_select(ctx).where(self._id_is(id_))
        if spec is not None:
            stmt = stmt.options(*self.loader_options(spec, ctx))
        if for_update:
            stmt = stmt.with_for_update()
        obj = ctx.session.scalars(stmt).one_or_none()
        if obj is None:
            raise self.not_found(id_)
        return obj

    def not_found(self, id_):
        return JsonApiError(404, "not_found", "Not found", f"There is no {self.type} with id {id_}.")

    def etag(self, obj):
        return f'"{self.type}-{obj.id}-v{obj.version}"'

    # ----------------------------------------------------------------- writing

    def load(self, body, ctx, obj=None):
        """A request document -> WriteState (model attribute -> value), or 400/403/409/422."""
        data = _check_document(body)
        type_name = data.get("type")
        if not isinstance(type_name, str):
            raise bad_request("data.type is required and must be a string.", pointer="/data/type",
                              code="invalid_document")
        if self.registry.canonical_type(type_name) != self.type:
            raise conflict(f"data.type is {type_name!r} but this endpoint takes {self.type!r}.",
                           code="type_mismatch", pointer="/data/type")
        if obj is None and "id" in data:
            raise JsonApiError(403, "client_id_not_supported", "Forbidden",
                               "Ids are assigned by the server; leave data.id out.", pointer="/data/id")
        if obj is not None:
            if "id" not in data:
                raise bad_request("data.id is required when updating.", pointer="/data/id",
                                  code="invalid_document")
            if data["id"] != str(obj.id):
                raise conflict(f"data.id {data['id']!r} does not match the id in the URL ({obj.id}).",
                               code="id_mismatch", pointer="/data/id")
        attributes = data.get("attributes", {})
        relationships = data.get("relationships", {})
        errors = []
        for name in attributes:
            if name in self.relationships or name in ("id", "type"):
                where = f"relationships.{name}" if name in self.relationships else name
                errors.append(invalid_field(json_pointer("data", "attributes", name),
                                            f"{name} is not an attribute; send it as data.{where}.",
                                            code="unknown_field"))
        linked = {}  # relationship name -> the id its linkage names (None for null)
        for name, value in relationships.items():
            rel = self.relationships.get(name)
            if rel is None:
                errors.append(invalid_field(json_pointer("data", "relationships", name),
                                            f"{self.type} has no relationship {name!r}.", code="unknown_field"))
            elif not rel.settable:
                errors.append(invalid_field(json_pointer("data", "relationships", name),
                                            f"{name} cannot be written here; use its relationship endpoint.",
                                            code="read_only"))
            else:
                try:
                    linked[name] = self._linkage(rel, value["data"])
                except JsonApiErrors as exc:
                    errors.extend(exc.errors)
        if errors:
            raise JsonApiErrors(errors)

        # A required attribute is satisfied by its relationship, or on create by a relationship
        # that implies it (implied_by): marshmallow is told not to ask for it then.
        satisfied = set()
        if obj is None:
            for name in linked:
                satisfied.add(self._fk_field_name(self.relationships[name]))
            for attr, (rel_name, _) in self.implied_by.items():
                source = self.relationships[rel_name]
                if linked.get(rel_name) is not None or attributes.get(self._fk_field_name(source)) is not None:
                    satisfied.add(self.attribute_field_names.get(attr, attr))
        payload = {"data": {"type": self.type, "attributes": attributes}}
        schema = self._load_schema()
        try:
            loaded = schema.load(payload, partial=True if obj is not None else tuple(sorted(satisfied)))
        except ValidationError as exc:
            raise JsonApiErrors(self._load_errors(exc.messages, attributes)) from None

        values, pointers = dict(loaded), {}
        for name, value in linked.items():
            rel = self.relationships[name]
            pointer = json_pointer("data", "relationships", name, "data")
            if rel.fk in values and values[rel.fk] != value:
                errors.append(invalid_field(pointer, f"{name} and {rel.fk} disagree."))
            elif value is None and not self.link_nullable(rel):
                errors.append(invalid_field(pointer, f"{name} is required: its data cannot be null."))
            values[rel.fk] = value
            pointers[rel.fk] = pointer
        if errors:
            raise JsonApiErrors(errors)
        if obj is None:
            self._imply(ctx, values, pointers)
        state = WriteState(self, ctx, values, pointers, obj)
        return state

    def _load_schema(self):
        """This thread's instance of the schema, for loading bodies: building one costs about
        150 µs (marshmallow copies every declared field), so each thread keeps its own."""
        schema = getattr(self._schemas, "schema", None)
        if schema is None:
            schema = self._schemas.schema = self.schema_class(registry=self.registry)
        return schema

    def _fk_field_name(self, rel):
        return self.attribute_field_names.get(rel.fk, rel.fk)

    def link_nullable(self, rel):
        """Whether a to-one link may be cleared: as its foreign key attribute (or column) allows."""
        field = self.schema_class._declared_fields.get(self._fk_field_name(rel))
        if field is not None:
            return bool(field.allow_none)
        column = self.mapper.columns.get(rel.fk)
        return column is None or bool(column.nullable)

    def _linkage(self, rel, data):
        """The linkage of a to-one relationship in a body -> the id it names (None for null).

        As at the relationship endpoint: not a resource identifier with a string type and a string
        id is a 400, another type a 409; an id no row can have is a 422 not_found."""
        pointer = json_pointer("data", "relationships", rel.name, "data")
        if data is None:
            return None
        if not isinstance(data, dict):
            raise bad_request(f"relationships.{rel.name}.data must be null or a resource identifier "
                              f"{{\"type\", \"id\"}}.", pointer=pointer, code="invalid_document")
        for member in ("type", "id"):
            if not isinstance(data.get(member), str):
                raise bad_request(f"relationships.{rel.name}.data.{member} is required and must be a string.",
                                  pointer=f"{pointer}/{member}", code="invalid_document")
        if self.registry.canonical_type(data["type"]) != rel.type:
            raise conflict(f"{rel.name} takes {rel.type}, not {data['type']!r}.", code="type_mismatch",
                           pointer=f"{pointer}/type")
        id_ = data["id"]
        if not (id_.isascii() and id_.isdigit()) or not 0 < int(id_) < 2 ** 31:
            raise JsonApiErrors([invalid_field(pointer, f"There is no {rel.type} with id {id_!r}.",
                                               code="not_found")])
        return int(id_)

    def _imply(self, ctx, values, pointers):
        """Fill in what `implied_by` derives from a related row the caller can see; a row the caller
        cannot see is left to check_references (a 422 naming the relationship's id)."""
        for attr, (rel_name, column) in self.implied_by.items():
            source = self.relationships[rel_name]
            source_id = values.get(source.fk)
            if attr in values or source_id is None:
                continue
            target = self.registry.resource(source.type)
            stmt = target.base_select(ctx, select(getattr(target.model, column))).where(target.model.id == source_id)
            row = ctx.session.execute(stmt).first()
            if row is None:
                continue
            pointer = pointers.get(source.fk) or json_pointer("data", "attributes", self._fk_field_name(source))
            if row[0] is None:
                name = self.attribute_field_names.get(attr, attr)
                raise JsonApiErrors([invalid_field(json_pointer("data", "attributes", name),
                                                   f"{name} is required.", code="required")])
            values[attr] = row[0]
            pointers[attr] = pointer

    def _load_errors(self, messages, attributes=()):
        errors = []
        raw = messages.get("errors", []) if isinstance(messages, dict) else messages
        for item in raw:
            pointer = item.get("source", {}).get("pointer", "/data")
            # marshmallow-jsonapi joins names into pointers unescaped: an attribute the client
            # sent (perhaps unknown, named `a/b` or `~`) is one token, escaped here.
            sent = pointer[len("/data/attributes/"):] if pointer.startswith("/data/attributes/") else None
            if sent is not None and sent in attributes:
                errors.append(self._load_error(json_pointer("data", "attributes", sent), sent, item))
                continue
            errors.append(self._load_error(pointer, None, item))
        return errors or [invalid_field("/data", "The resource object is invalid.")]

    def _load_error(self, pointer, name, item):
        """One error object from one of marshmallow-jsonapi's (`name` when known exactly)."""
        detail = item.get("detail")
        if isinstance(detail, (list, dict)):
            detail = "; ".join(str(d) for d in (detail.values() if isinstance(detail, dict) else detail))
        if name is None:
            name = pointer.rstrip("/").split("/")[-1] if pointer.startswith("/data/") else None
            if pointer.endswith("/data") and "/relationships/" in pointer:
                name = pointer.split("/")[3]
        field = self.schema_class._declared_fields.get(name) if name else None
        if detail == "Unknown field.":
            if field is not None and field.dump_only:
                return invalid_field(pointer, f"{name} is read-only.", code="read_only")
            return invalid_field(pointer, f"{self.type} has no attribute {name!r}.", code="unknown_field")
        if detail == "Missing data for required field.":
            return invalid_field(pointer, f"{name} is required.", code="required")
        return invalid_field(pointer, f"{name}: {detail}" if name else str(detail))

    def check_references(self, state):
        """Every id in the body must name a row the caller may see (422) and point at (403)."""
        errors = []
        policy = self.registry.policy
        for rel in self.relationships.values():
            if rel.fk is None or not state.changed(rel.fk) or state.values[rel.fk] is None:
                continue
            value = state.values[rel.fk]
            target = self.registry.resource(rel.type)
            if not self._exists(state.ctx, target, value, target.visible(state.ctx)):
                errors.append(state.error(rel.fk, f"There is no {rel.type} with id {value}.", code="not_found"))
                continue
            assignable = policy.assignable(state.ctx, target)
            if assignable is not None and not self._exists(state.ctx, target, value, assignable):
                errors.append(JsonApiError(403, "forbidden", "Forbidden",
                                           f"You may not point {rel.fk} at {rel.type} {value}.",
                                           pointer=state.pointer(rel.fk)))
        if errors:
            raise JsonApiErrors(errors)

    @staticmethod
    def _exists(ctx, resource, id_, predicate):
        stmt = select(resource.model.id).where(resource.model.id == id_)
        if predicate is not None:
            stmt = stmt.where(predicate)
        return ctx.session.scalar(stmt) is not None

    def check_unique(self, state):
        """Clear 409s for values already taken (the database constraint catches races)."""
        for attr, taken in self.unique.items():
            if attr not in state.values or state.values[attr] is None:
                continue
            stmt = select(self.model.id).where(taken(state.values[attr]))
            if state.obj is not None:
                stmt = stmt.where(self.model.id != state.obj.id)
            if state.ctx.session.scalar(stmt.limit(1)) is not None:
                raise conflict(f"{self.attribute_field_names.get(attr, attr)} {state.values[attr]!r} is already taken.",
                               code="not_unique", pointer=state.pointer(attr))

    def object_meta(self):
        """A `meta` member for each resource object of this type (the same for all of them), or None."""
        return None

    def validate(self, state):
        """Resource-specific checks across fields; raise JsonApiErrors with pointers."""

    def create(self, state):
        """Build and add the new row; override to derive columns (hooks run before this)."""
        obj = self.model(**state.values)
        state.ctx.session.add(obj)
        return obj

    def update(self, state):
        for attr, value in state.values.items():
            setattr(state.obj, attr, value)
        return state.obj

    def delete(self, ctx, obj):
        ctx.session.delete(obj)

    def prepare(self, state):
        """Run every check of a write, in order; the view then calls create/update."""
        self.check_references(state)
        self.validate(state)
        self.registry.policy.check_write(state.ctx, self, state)
        self.check_unique(state)


def _check_document(body):
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object with a data member.", pointer="", code="invalid_document")
    data = body.get("data")
    if not isinstance(data, dict):
        raise bad_request("data must be a resource object.", pointer="/data", code="invalid_document")
    if "id" in data and not isinstance(data["id"], str):
        raise bad_request("data.id must be a string.", pointer="/data/id", code="invalid_document")
    if "attributes" in data and not isinstance(data["attributes"], dict):
        raise bad_request("data.attributes must be an object.", pointer="/data/attributes", code="invalid_document")
    relationships = data.get("relationships", {})
    if not isinstance(relationships, dict):
        raise bad_request("data.relationships must be an object.", pointer="/data/relationships",
                          code="invalid_document")
    for name, value in relationships.items():
        if not isinstance(value, dict) or "data" not in value:
            raise bad_request(f"relationships.{name} must be an object with a data member.",
                              pointer=json_pointer("data", "relationships", name), code="invalid_document")
    for key in data:
        if key not in ("type", "id", "attributes", "relationships", "meta", "links", "lid"):
            raise bad_request(f"Unknown member {key!r} in data.", pointer=json_pointer("data", key),
                              code="invalid_document")
    return data


__all__ = ["Resource", "Relationship", "WriteState"]
