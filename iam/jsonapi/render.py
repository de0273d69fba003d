"""Render model objects as JSON:API resource objects, fast.

The marshmallow-jsonapi schemas stay the single declaration of a resource's fields, and they
still load and validate every request body. Dumping through marshmallow, though, costs a
schema dump per object (field lookups, processors, signature inspection): about 0.3 ms per
object, so a page of 1000 accounts with three includes spent most of its time there.

A `Plan` is compiled once per schema class from its declared fields: the attribute getters
(plain attribute reads for the field types whose dump is the identity, a strftime for
timestamps, the field's own `serialize` for anything else) and the relationships. Rendering
is then a loop of dict building, with the output marshmallow-jsonapi gave.
"""
from datetime import date, timezone
from operator import itemgetter

import marshmallow as ma
from marshmallow import fields as ma_fields

from .schema import Rel, Timestamp, format_timestamp

# Field types whose dump of a value read from the database is that value.
_IDENTITY = (ma_fields.String, ma_fields.Integer, ma_fields.Boolean, ma_fields.Dict, ma_fields.Raw)
_MISSING = object()


def _reader(attr):
    """obj -> obj.attr, from the instance dict when loaded (skipping SQLAlchemy's descriptor)."""
    def read(obj):
        value = obj.__dict__.get(attr, _MISSING)
        return getattr(obj, attr) if value is _MISSING else value
    return read


def _identity(field):
    """Whether the field's dump of a value is that value."""
    return isinstance(field, _IDENTITY) and type(field)._serialize in {cls._serialize for cls in _IDENTITY}


def _timestamp(value):
    """A timestamp as it renders: the datetime itself when orjson writes it exactly as
    format_timestamp would (UTC, microseconds not zero: `2026-01-31T12:00:00.123456Z`, in C,
    several times faster), else the string. (orjson leaves out a zero fraction.)"""
    if value.microsecond and value.tzinfo is timezone.utc:
        return value
    return format_timestamp(value)


def _conversion(field):
    """For a field that renders one plain attribute: (True, the function of its non-null value
    that renders it, or None when the value renders as is). (False, None) otherwise."""
    if type(field) is Timestamp:
        return True, _timestamp
    if type(field) is ma_fields.Date and field.format in (None, "iso"):
        return True, date.isoformat
    if type(field) is ma_fields.List and _identity(field.inner):
        return True, list
    if _identity(field):
        return True, None
    return False, None


def _getter(name, field, attr, convert):
    """A function obj -> rendered value for one attribute field."""
    if attr is None:
        return lambda obj: field.serialize(name, obj)
    read = _reader(attr)
    if convert is None:
        return read
    return lambda obj: None if (value := read(obj)) is None else convert(value)


class Plan:
    """How to render the resources of one schema class.

    `attributes` renders any object. `plain`, when every attribute field renders one plain
    attribute (a column), renders from the instance dict in one step: the renderer's fast
    path for rows read as rows and for ORM objects whose columns are all loaded."""

    def __init__(self, schema_class):
        prototype = schema_class()
        self.type = schema_class.opts.type_
        self.attributes = []        # (key, getter)
        self.plain = []             # (key, attribute, conversion or None), or None
        self.relationships = {}     # name -> Rel
        for name, field in prototype.dump_fields.items():
            if name == "id":
                continue
            if isinstance(field, Rel):
                self.relationships[name] = field
                continue
            key, attr = field.data_key or name, field.attribute or name
            ok, convert = _conversion(field)
            if not ok or "." in attr or field.dump_default is not ma.missing:
                attr = convert = None
                self.plain = None
            elif self.plain is not None:
                self.plain.append((key, attr, convert))
            self.attributes.append((key, _getter(name, field, attr, convert)))


class _Fast:
    """The plain attributes of one sparse fieldset: their values in one C-level step."""

    def __init__(self, plain):
        self.keys = tuple(key for key, _, _ in plain)
        self.attrs = attrs = [attr for _, attr, _ in plain]
        self.values = (lambda d: (d[attrs[0]],)) if len(attrs) == 1 else itemgetter(*attrs)
        self.conversions = [(key, convert) for key, _, convert in plain if convert is not None]

    def render(self, obj):
        """The attributes object, or None when one of the values is not in the instance dict."""
        try:
            values = self.values(obj.__dict__)
        except KeyError:
            return None
        attributes = dict(zip(self.keys, values))
        for key, convert in self.conversions:
            value = attributes[key]
            if value is not None:
                attributes[key] = convert(value)
        return attributes


_plans = {}


def plan_for(schema_class):
    plan = _plans.get(schema_class)
    if plan is None:
        plan = _plans[schema_class] = Plan(schema_class)
    return plan


def include_tree(paths):
    """(("roles", "account"), ("person",)) -> {"roles": {"account": {}}, "person": {}}."""
    tree = {}
    for path in paths:
        node = tree
        for name in path:
            node = node.setdefault(name, {})
    return tree


def _relationship(own, name, type_, has_linkage, key):
    """A relationship object: its links, and its linkage when the row holds the foreign key."""
    relationship = {"links": {"self": f"{own}/relationships/{name}", "related": f"{own}/{name}"}}
    if has_linkage:
        relationship["data"] = None if key is None else {"type": type_, "id": str(key)}
    return relationship


class Renderer:
    """Renders one document's resource objects: primary data and everything included.

    `sparse` maps a type to the field names to render (absent: all). Relationships on an
    include path are followed even when a sparse fieldset leaves them out of the output.
    """

    def __init__(self, registry, base_url, sparse):
        self.registry = registry
        self.base_url = base_url
        self.sparse = sparse
        self.items = {}       # (type, id) -> resource object, primary and included
        self.included = []    # included resource objects, in the order they were reached
        self.views = {}       # type -> the attributes and relationships its fieldset renders

    def primary(self, schema_class, objs, tree):
        """The resource objects of `objs` (primary data), and everything `tree` includes.

        Every primary object is registered before any relationship is followed, so a row
        that is both primary and reached through an include path is not included again."""
        plan = plan_for(schema_class)
        view, items, kind = self._view(plan), self.items, plan.type
        data = []
        if objs and hasattr(objs[0], "_fields"):  # rows read by position (rows.py: a plan with nothing to attach)
            render, id_at = self._by_position(plan, view, objs[0]._fields)
            for obj in objs:
                item = items[(kind, obj[id_at])] = render(obj)
                data.append(item)
        else:
            render = self._item
            for obj in objs:
                item = items[(kind, obj.id)] = render(plan, obj, view)
                data.append(item)
        if tree:
            for obj, item in zip(objs, data):
                self._follow_all(plan, obj, item, tree)
        return data

    def _render(self, schema_class, obj, tree):
        """An included object: rendered once, however many paths reach it."""
        plan = plan_for(schema_class)
        key = (plan.type, obj.id)
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = self._item(plan, obj)
            self.included.append(item)
        self._follow_all(plan, obj, item, tree)

    def _follow_all(self, plan, obj, item, tree):
        for name, subtree in tree.items():
            self._follow(plan, obj, item, name, subtree)

    def _view(self, plan):
        """(attributes, fast path or None, relationships) of a type, as this document's sparse
        fieldset renders it."""
        view = self.views.get(plan.type)
        if view is None:
            names = self.sparse.get(plan.type)
            attributes = [(key, get) for key, get in plan.attributes if names is None or key in names]
            fast = None
            if plan.plain is not None:
                plain = [entry for entry in plan.plain if names is None or entry[0] in names]
                fast = _Fast(plain) if plain else None
            relationships = [(name, rel) for name, rel in plan.relationships.items() if names is None or name in names]
            meta = self.registry.resource(plan.type).object_meta()
            view = self.views[plan.type] = (attributes, fast, relationships, meta)
        return view

    def _by_position(self, plan, view, fields):
        """For rows read by position (SQLAlchemy's rows, or named tuples; `fields`: their column
        names in order): (a function row -> resource object that reads the values by position,
        as `_item` renders them, the position of the id). RowPlan reads rows so only for types
        whose every attribute is a plain column (`plan.plain`), and selects the id, each
        rendered column and each rendered relationship's foreign key."""
        _, fast, relationships, meta = view
        id_at = fields.index("id")
        at = [fields.index(attr) for attr in fast.attrs] if fast is not None else []
        links = [(name, rel.type_, fields.index(rel.fk) if rel.fk is not None else None) for name, rel in relationships]
        keys = fast.keys if fast is not None else ()
        conversions = fast.conversions if fast is not None else ()
        values = (lambda row: (row[at[0]],)) if len(at) == 1 else itemgetter(*at) if at else None
        kind, base = plan.type, f"{self.base_url}/{plan.type}/"

        def render(row):
            id_ = str(row[id_at])
            own = base + id_
            item = {"type": kind, "id": id_}
            if keys:
                rendered = item["attributes"] = dict(zip(keys, values(row)))
                for key, convert in conversions:
                    value = rendered[key]
                    if value is not None:
                        rendered[key] = convert(value)
            if links:
                item["relationships"] = {name: _relationship(own, name, type_, fk_at is not None,
                                                             None if fk_at is None else row[fk_at])
                                         for name, type_, fk_at in links}
            item["links"] = {"self": own}
            if meta:
                item["meta"] = meta
            return item
        return render, id_at

    def _item(self, plan, obj, view=None):
        attributes, fast, relationships, meta = view or self._view(plan)
        own = f"{self.base_url}/{plan.type}/{obj.id}"
        item = {"type": plan.type, "id": str(obj.id)}
        if attributes:
            values = fast.render(obj) if fast is not None else None
            item["attributes"] = values if values is not None else {key: get(obj) for key, get in attributes}
        if relationships:
            item["relationships"] = {name: _relationship(own, name, rel.type_, rel.fk is not None,
                                                         None if rel.fk is None else getattr(obj, rel.fk))
                                     for name, rel in relationships}
        item["links"] = {"self": own}
        if meta:
            item["meta"] = meta
        return item

    def _follow(self, plan, obj, item, name, subtree):
        """Full linkage for an included relationship, and render what it points at."""
        rel = plan.relationships[name]
        value = getattr(obj, rel.attribute or name)
        target = self.registry.resource(rel.type_).schema_class
        if rel.many:
            linkage = [{"type": rel.type_, "id": str(each.id)} for each in value]
            for each in value:
                self._render(target, each, subtree)
        elif value is None:
            linkage = None
        else:
            linkage = {"type": rel.type_, "id": str(value.id)}
            self._render(target, value, subtree)
        relationships = item.get("relationships")
        if relationships is not None and name in relationships:
            relationships[name]["data"] = linkage
