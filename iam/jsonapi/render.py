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


def _timestamp(value):
    return None if value is None else format_timestamp(value)


def _identity(field):
    """Whether the field's dump of a value is that value."""
    return isinstance(field, _IDENTITY) and type(field)._serialize in {cls._serialize for cls in _IDENTITY}


def _getter(name, field):
    """A function obj -> rendered value for one attribute field."""
    attr = field.attribute or name
    plain = "." not in attr and field.dump_default is ma.missing
    if not plain:
        return lambda obj: field.serialize(name, obj)
    read = _reader(attr)
    if type(field) is Timestamp:
        return lambda obj: _timestamp(read(obj))
    if type(field) is ma_fields.Date and field.format in (None, "iso"):
        return lambda obj: None if (value := read(obj)) is None else value.isoformat()
    if type(field) is ma_fields.List and _identity(field.inner):
        return lambda obj: None if (value := read(obj)) is None else list(value)
    if _identity(field):
        return read
    return lambda obj: field.serialize(name, obj)


class Plan:
    """How to render the resources of one schema class."""

    def __init__(self, schema_class):
        prototype = schema_class()
        self.type = schema_class.opts.type_
        self.attributes = []        # (key, getter)
        self.relationships = {}     # name -> Rel
        for name, field in prototype.dump_fields.items():
            if name == "id":
                continue
            if isinstance(field, Rel):
                self.relationships[name] = field
            else:
                self.attributes.append((field.data_key or name, _getter(name, field)))


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
        data = []
        for obj in objs:
            item = self.items[(plan.type, obj.id)] = self._item(plan, obj)
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
        """(attributes, relationships) of a type that this document renders: its sparse fieldset."""
        view = self.views.get(plan.type)
        if view is None:
            names = self.sparse.get(plan.type)
            attributes = [(key, get) for key, get in plan.attributes if names is None or key in names]
            relationships = [(name, rel) for name, rel in plan.relationships.items() if names is None or name in names]
            view = self.views[plan.type] = (attributes, relationships)
        return view

    def _item(self, plan, obj):
        attributes, relationships = self._view(plan)
        own = f"{self.base_url}/{plan.type}/{obj.id}"
        item = {"type": plan.type, "id": str(obj.id)}
        if attributes:
            item["attributes"] = {key: get(obj) for key, get in attributes}
        if relationships:
            rendered = item["relationships"] = {}
            for name, rel in relationships:
                relationship = {"links": {"self": f"{own}/relationships/{name}", "related": f"{own}/{name}"}}
                if rel.fk is not None:
                    value = getattr(obj, rel.fk)
                    relationship["data"] = None if value is None else {"type": rel.type_, "id": str(value)}
                rendered[name] = relationship
        item["links"] = {"self": own}
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
