"""Read what a response renders as plain rows: no ORM objects on the read path.

Loading a page through the ORM builds an instance per row (identity map, instance state,
a deferred-loader callable per unloaded column): about 10 µs a row, most of the time of a
1000-row page. A read that only renders does not need any of that. When every field a
request renders, on the primary type and on every included one, is a plain column (or a
hybrid property, whose SQL expression is selected), a
`RowPlan` selects exactly those columns, wraps each row in a `Loaded` (its values as
attributes, which is all the renderer reads), and loads each include path with one query
of its own that attaches the related rows to their parents, as the ORM's selectinload did:
  - a to-one whose key is on the parent: the target rows whose id is among the parents' keys;
  - a to-many (or to-one) whose key is on the target: the target rows whose key is among
    the parents' ids;
  - through an association table: the target rows joined to it, by the parents' ids;
each restricted to what the caller may see (`Resource.visible`), so includes see the rows
a list of the target would. Anything else (a computed attribute, a relationship of a type
to itself, a composite key) keeps the ORM path: `RowPlan.build` returns None.
"""
from collections import namedtuple
from functools import lru_cache

from sqlalchemy import and_, any_, bindparam, select
from sqlalchemy.orm import MANYTOONE

from .connections import connection_for
from .driver import ROW_READ, Prebuilt
from .render import include_tree, plan_for

# One query per include path even when a full page fans out (roles.account): below the
# bind-parameter limits of both SQLite and PostgreSQL.
CHUNK_SIZE = 30000


class Loaded:
    """One row read for rendering: its columns, and the related rows attached to it, as attributes."""

    def __init__(self, values):
        self.__dict__ = values


class _Hop:
    """How to load one relationship of a parent type for a set of parent rows."""

    @staticmethod
    def supports(prop):
        """Whether rows can follow this relationship: one key column on each side."""
        if prop.secondary is not None:
            return len(prop.synchronize_pairs) == 1 and len(prop.secondary_synchronize_pairs) == 1
        return len(prop.local_remote_pairs) == 1

    def __init__(self, resource, prop, rel, target, plan):
        self.rel, self.target, self.plan = rel, target, plan
        self.attribute = rel.attribute
        if prop.secondary is not None:
            (parent_col, link_parent), = prop.synchronize_pairs
            (target_col, link_target), = prop.secondary_synchronize_pairs
            self.key = link_parent                  # the association table's parent column
            self.join = (prop.secondary, link_target == target_col)
        else:
            (parent_col, remote), = prop.local_remote_pairs
            self.key = remote                       # the target's column matching the parent's
            self.join = None
        self.parent_key = resource.mapper.get_property_by_column(parent_col).key
        self.parent_column = parent_col
        order = prop.order_by or (target.model.id,)
        self.order_by = ((self.key, *order) if rel.many else
                         (self.key,) if self.key is target.model.__table__.c.id else (self.key, target.model.id))
        self.select = select(self.key, *plan.columns)
        if self.join is not None:
            self.select = self.select.select_from(target.model).join(*self.join)

        # For a caller who sees every row of the target (no predicate), the whole statement is
        # built once and run on the driver (driver.py): on PostgreSQL the keys are one array
        # parameter (`= ANY`), elsewhere an expanding IN.
        self.everything = Prebuilt(self._everything)

    def joinable(self, prop):
        """A to-one whose key is the parent's and names the target's id: one row or none per parent."""
        return (prop.secondary is None and not self.rel.many and prop.direction is MANYTOONE
                and self.key is self.target.model.__table__.c.id)

    def _everything(self, dialect_name):
        keys = (self.key == any_(bindparam("keys")) if dialect_name == "postgresql"
                else self.key.in_(bindparam("keys", expanding=True)))
        return self.select.where(keys).order_by(*self.order_by)

    def rows(self, session, ctx, keys):
        """The target rows of these parent keys that the caller may see: (parent key, *columns)."""
        visible = self.target.visible(ctx)
        if visible is None:
            return self.everything.rows(connection_for(session), {"keys": keys})
        return _rows(session, self.select.where(visible).where(self.key.in_(keys)).order_by(*self.order_by))


class RowPlan:
    """The columns to select for one type, and how to load each included relationship."""

    def __init__(self, resource, columns, hops, joined=()):
        self.resource = resource
        self.names = columns
        # Columns, and the SQL expressions of hybrid properties under their names.
        self.columns = [getattr(resource.model, name) if name not in resource.hybrids
                        else getattr(resource.model, name).label(name) for name in columns]
        # To-one includes whose key is on this row are read in the same statement (LEFT OUTER
        # JOIN, the target's columns after this row's); the other include paths, one query each.
        self.joined = list(joined)
        self._slices = []
        start = len(columns)
        for hop in self.joined:
            stop = start + len(hop.plan.names)
            self._slices.append((hop, start, stop, start + hop.plan.names.index("id")))
            start = stop
        # Built once, for a caller who sees every row of each joined type: requests add their
        # WHERE, ORDER BY and LIMIT (select_for builds it anew when a joined type has a predicate).
        self.select = self._joined_select([None] * len(self.joined))
        # Rows nothing is attached to are rendered by position (render.py): SQLAlchemy's own
        # result rows as they come (built in C; their columns as attributes under `_fields`)
        # when their keys are the plan's names, else named tuples; rows that get related rows
        # attached are `Loaded`. The driver's rows (plain tuples) become named tuples.
        self.tuple_class = (_named_tuple(self.names) if not hops and not self.joined
                            and plan_for(resource.schema_class).plain is not None else None)
        self.rows_as_read = (self.tuple_class is not None
                             and list(self.select.selected_columns.keys()) == list(self.names))
        # The row with an id, for a caller who sees every row: built once, run on the driver.
        self.by_id = Prebuilt(lambda _: self.select.where(resource.model.id == bindparam("id")))
        self.hops = hops

    def _joined_select(self, predicates):
        """This plan's select, each joined type's rows restricted by its predicate (None: all)."""
        if not self.joined:
            return select(*self.columns)
        stmt = select(*self.columns, *(column for hop in self.joined for column in hop.plan.columns))
        stmt = stmt.select_from(self.resource.model)
        for hop, visible in zip(self.joined, predicates):
            on = hop.parent_column == hop.key
            stmt = stmt.outerjoin(hop.target.model, on if visible is None else and_(on, visible))
        return stmt

    def select_for(self, ctx):
        """The select for this caller: joined rows it may not see are not joined (their
        relationship reads as empty, as an include path's query would leave it)."""
        if not self.joined:
            return self.select
        predicates = [hop.target.visible(ctx) for hop in self.joined]
        return self.select if all(p is None for p in predicates) else self._joined_select(predicates)

    def sees_all_joined(self, ctx):
        return all(hop.target.visible(ctx) is None for hop in self.joined)

    @classmethod
    def build(cls, resource, spec, extra=()):
        """A plan for rendering `resource` as `spec` asks, or None when the ORM must load it.
        Plans depend on the request's fieldsets and includes only, so they are kept (a bounded
        number of them: the combinations are the client's to choose)."""
        fields = tuple(sorted((type_name, tuple(sorted(names))) for type_name, names in spec.fields.items()))
        return _plan(cls, resource, fields, tuple(tuple(path) for path in spec.include), frozenset(extra))

    @classmethod
    def _build(cls, resource, fields, tree, extra, top=True):
        columns = resource.render_columns(fields.get(resource.type), tree.keys())
        if columns is None:
            return None
        hops, joined, tables = [], [], {resource.model.__table__}
        for name, subtree in tree.items():
            rel = resource.relationships[name]
            target = resource.registry.resource(rel.type)
            prop = resource.mapper.relationships[rel.attribute]
            if target.model is resource.model or not _Hop.supports(prop):
                return None
            plan = cls._build(target, fields, subtree, set(), top=False)
            if plan is None:
                return None
            hop = _Hop(resource, prop, rel, target, plan)
            columns |= {hop.parent_key}
            # Joined: a top-level to-one whose key is on this row and points at the target's id,
            # each target table once (its predicates name the table itself, not an alias).
            if (top and hop.joinable(prop) and target.model.__table__ not in tables):
                tables.add(target.model.__table__)
                joined.append(hop)
            else:
                hops.append(hop)
        return cls(resource, sorted(columns | extra), hops, joined)

    def wrap(self, rows):
        if self.tuple_class is not None:
            if self.rows_as_read and (not rows or hasattr(rows[0], "_fields")):
                return rows
            return list(map(self.tuple_class._make, rows))
        names = self.names
        if not self.joined:
            return [Loaded(dict(zip(names, row))) for row in rows]
        width, wrapped = len(names), []
        seen = [{} for _ in self._slices]   # per joined type: one object per id, however many rows share it
        for row in rows:
            parent = Loaded(dict(zip(names, row[:width])))
            for (hop, start, stop, id_at), objects in zip(self._slices, seen):
                key = row[id_at]
                obj = None
                if key is not None:
                    obj = objects.get(key)
                    if obj is None:
                        obj = objects[key] = Loaded(dict(zip(hop.plan.names, row[start:stop])))
                parent.__dict__[hop.attribute] = obj
            wrapped.append(parent)
        return wrapped

    def read(self, session, ctx, stmt, limit=None):
        """The rows of `stmt` (this plan's select, narrowed), their include paths attached to
        the first `limit` of them; and whether there were more than `limit`."""
        return self.attached(session, ctx, _rows(session, stmt), limit)

    def read_id(self, session, ctx, id_):
        """The row with this id (the caller sees every row of the type), its include paths attached."""
        if not self.sees_all_joined(ctx):
            rows, _ = self.read(session, ctx, self.select_for(ctx).where(self.resource.model.id == id_))
            return rows
        rows, _ = self.attached(session, ctx, self.by_id.rows(connection_for(session), {"id": id_}))
        return rows

    def attached(self, session, ctx, rows, limit=None):
        rows = self.wrap(rows)
        more = limit is not None and len(rows) > limit
        rows = rows[:limit]
        self.attach(session, ctx, rows)
        return rows, more

    def attach(self, session, ctx, parents):
        """Load every include path below these parent rows, one query per path (the joined
        ones are attached already: what lies below them is loaded here)."""
        for hop in self.joined:
            if hop.plan.hops:
                targets = {id(obj): obj for obj in (p.__dict__[hop.attribute] for p in parents) if obj is not None}
                if targets:
                    hop.plan.attach(session, ctx, list(targets.values()))
        for hop in self.hops:
            keys = sorted({p.__dict__[hop.parent_key] for p in parents} - {None})
            by_id, by_key = {}, {}
            names = hop.plan.names
            for start in range(0, len(keys), CHUNK_SIZE):
                for row in hop.rows(session, ctx, keys[start:start + CHUNK_SIZE]):
                    values = dict(zip(names, row[1:]))
                    obj = by_id.get(values["id"])
                    if obj is None:
                        obj = by_id[values["id"]] = Loaded(values)
                    by_key.setdefault(row[0], []).append(obj)
            attribute, many = hop.attribute, hop.rel.many
            for parent in parents:
                found = by_key.get(parent.__dict__[hop.parent_key], ())
                parent.__dict__[attribute] = list(found) if many else (found[0] if found else None)
            if hop.plan.hops and by_id:
                hop.plan.attach(session, ctx, list(by_id.values()))


def _rows(session, stmt, parameters=None):
    """The rows of a select, through the session's connection: Core's result rows, not the ORM's.

    The statements name mapped attributes, so Session.execute would hand their results to the
    ORM's loading, which builds each row in Python, a getter per column; a Connection builds
    them in C. Nothing is pending when a read runs (a change is flushed before its answer is
    read back: Api.render_stored), so skipping the Session's autoflush changes nothing.
    Rows are read by position: the result need not map this statement's column objects to
    the cached statement's (ROW_READ), which costs a comparison of column expressions each."""
    return connection_for(session).execute(stmt, parameters, execution_options=ROW_READ).all()


def _named_tuple(names):
    try:
        return namedtuple("Row", names)
    except ValueError:  # a column name a named tuple cannot carry (a keyword, a leading underscore)
        return None


@lru_cache(maxsize=512)
def _plan(cls, resource, fields, include, extra):
    return cls._build(resource, dict(fields), include_tree(include), set(extra))
