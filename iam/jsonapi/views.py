"""List / show / create / update / delete / relationship views for any Resource.

`Api` is the registry of resources on one blueprint. It knows how to authenticate a
request and which policy decides visibility and permission, but both are supplied by the
application: the engine itself knows nothing about IAM.
"""
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from flask import Response, g, request
from sqlalchemy import false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import with_parent
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.urls import iri_to_uri

from . import documents, encoding, query
from .connections import close_read_connection, open_read_connection
from .errors import JsonApiError, conflict
from .media import JSONAPI_MEDIA_TYPE, check_accept, read_json_body
from .query import MAX_URI_LENGTH
from .resource import WriteState

log = logging.getLogger(__name__)


def _plain(value):
    """A stored value as JSON (for change records): timestamps and dates as ISO strings."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def snapshot(resource, obj, attributes=None):
    """{attribute: value} of `obj` for change records; secrets are not attributes."""
    names = attributes if attributes is not None else [attr for attr, _ in resource.attributes.values()]
    return {name: _plain(getattr(obj, name, None)) for name in names}


class Policy:
    """Allow-everything policy; applications pass their own to Api.

    Predicates are SQL expressions on the resource's model, or None for "no restriction".
    """

    def visible(self, ctx, resource):
        """Rows the caller may read; everything else answers 404."""
        return None

    def writable(self, ctx, resource):
        """Of the visible rows, those the caller may change or delete (others: 403)."""
        return None

    def assignable(self, ctx, resource):
        """Rows an id in a request body may point at (visible but not assignable: 403)."""
        return None

    def authorize(self, ctx, resource, action, obj=None):
        """Action-level decision before anything is read or written; raise to refuse."""
        return None

    def check_write(self, ctx, resource, state):
        """Field-level decision on a pending create or update; raise to refuse."""
        return None


@dataclass
class RequestContext:
    """What every step of a request needs: who asks, where, and when."""

    api: object
    principal: object
    session: object
    dialect: str
    base_url: str
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def _close_read_connections_last(state):
    """The read connection a request took (connections.py) goes back to the pool when its app
    context ends, after every other teardown (the app's Session, which may be bound to it, is
    removed first): Flask runs them last registered first, so this one goes to the front."""
    state.app.teardown_appcontext_funcs.insert(0, lambda exc: close_read_connection())


class Api:
    def __init__(self, blueprint, db, authenticate=None, policy=None, on_change=None):
        self.blueprint = blueprint
        self.db = db
        self._authenticate = authenticate or (lambda: None)
        self.policy = policy or Policy()
        # on_change(ctx, resource, action, obj, before, after): called inside the transaction
        # of every create, update and delete, so a record of it commits or rolls back with it.
        self.on_change = on_change or (lambda *args: None)
        self.resources = {}
        self._aliases = {}
        self._base_urls = {}  # (scheme, host, root path) -> the API's base URL (_base_url)
        blueprint.before_request(_check_uri_length)
        blueprint.after_request(_jsonapi_media_type)
        blueprint.record_once(_close_read_connections_last)

    # ------------------------------------------------------------ registry

    def register(self, resource_cls):
        resource = resource_cls(self)
        self.resources[resource.type] = resource
        self._aliases[resource.type] = resource.type
        for alias in resource.aliases:
            self._aliases[alias] = resource.type
        _register_routes(self, resource)
        return resource

    def resource(self, type_name):
        return self.resources[type_name]

    def canonical_type(self, name):
        return self._aliases.get(name)

    # ------------------------------------------------------------ requests

    def context(self, principal=None, authenticate=True):
        """The request context; authenticates unless told the endpoint is public."""
        session = self.db.session
        engine = self.db.engine
        if request.method in ("GET", "HEAD") and getattr(engine.dialect, "default_isolation_level", None) == \
                "READ COMMITTED" and not (session.registry.has() and session().in_transaction()):
            # A read on PostgreSQL runs on a connection of its own in autocommit, without an ORM
            # Session unless it reads through the ORM (connections.py). The pool restores the
            # isolation level when the connection returns. (The dialect learns the database's
            # default level on its first connection: a process's very first request runs in
            # a transaction.)
            open_read_connection(engine)
        if authenticate and principal is None:
            principal = self._authenticate()
        ctx = RequestContext(self, principal, session, engine.dialect.name, self._base_url())
        g.jsonapi_ctx = ctx
        return ctx

    def _base_url(self):
        """The API's URL as this request reached it (links are built on it). Werkzeug builds
        `host_url` anew on every access (an IRI conversion); it is the same for every request
        with the same scheme, host and root path, so it is kept, a bounded number of them (the
        Host header is the client's)."""
        key = (request.scheme, request.host, request.root_path)
        base = self._base_urls.get(key)
        if base is None:
            if len(self._base_urls) >= 64:
                self._base_urls.clear()
            base = self._base_urls[key] = (request.host_url.rstrip("/") + request.script_root
                                           + (self.blueprint.url_prefix or ""))
        return base

    def begin(self, resource, action, authorize=True):
        """Media check, authentication and (unless the action targets one row) authorization."""
        check_accept()
        ctx = self.context()
        if authorize:
            self.policy.authorize(ctx, resource, action)
        return ctx

    def load_for_change(self, ctx, resource, id_, action):
        """The row to update or delete: 404 if invisible (first: an invisible row does not
        exist, whatever the caller's rights), then 403 if the action or the row is not allowed."""
        obj = resource.get(ctx, id_, for_update=True)
        self.policy.authorize(ctx, resource, action, obj)
        writable = self.policy.writable(ctx, resource)
        if writable is not None and ctx.session.scalar(
                select(resource.model.id).where(resource.model.id == obj.id, writable)) is None:
            raise JsonApiError(403, "forbidden", "Forbidden", f"You may not {action} this {resource.type} resource.")
        return obj

    def flush(self, ctx, deleting=False):
        """Flush pending changes; a constraint violation or lost race rolls back and answers."""
        self._guarded(ctx.session.flush, ctx, deleting)

    def commit(self, ctx, deleting=False):
        """Commit; a constraint violation becomes a 409 and a lost race a 412, with nothing written."""
        self._guarded(ctx.session.commit, ctx, deleting)

    def _guarded(self, action, ctx, deleting):
        try:
            action()
        except IntegrityError as exc:
            ctx.session.rollback()
            if deleting or _is_foreign_key_violation(exc):
                raise conflict("Other records still refer to this one; remove or move them first.",
                               code="in_use") from None
            raise conflict("A value that must be unique is already taken.", code="not_unique") from None
        except StaleDataError:
            ctx.session.rollback()
            raise JsonApiError(412, "precondition_failed", "Precondition failed",
                               "The resource was changed by someone else meanwhile; fetch it and retry.") from None

    def respond(self, document, status=200, headers=None):
        # Encoded by the engine (encoding.encode), not the app's JSON provider: the renderer
        # leaves some timestamps as datetimes for orjson to write.
        response = Response(encoding.encode(document), status, mimetype=JSONAPI_MEDIA_TYPE)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def render(self, resource, obj, spec, ctx, status=200, headers=None, meta=None):
        document = documents.single_document(resource, obj, spec, ctx)
        if meta:
            document["meta"] = {**document.get("meta", {}), **meta}
        headers = dict(headers or {})
        headers["ETag"] = resource.etag(obj)
        return self.respond(document, status, headers)

    def write(self, resource, ctx, state, spec, status=200):
        """Run a prepared write: checks, hook, the answer, commit, then the after-commit steps.

        The answer is read and rendered inside the transaction, from what it flushed: once the
        change is committed nothing may turn its answer into an error (a client retrying an
        answer it took for a failure would store the change twice)."""
        resource.prepare(state)
        before = None if state.creating else snapshot(resource, state.obj, list(state.values))
        obj = resource.create(state) if state.creating else resource.update(state)
        self.flush(ctx)
        self.on_change(ctx, resource, "create" if state.creating else "update", obj, before,
                       snapshot(resource, obj, list(state.values)))
        obj_id = obj.id
        headers = {"Location": f"{ctx.base_url}/{resource.type}/{obj_id}"} if status == 201 else None
        response = self.render_stored(resource, ctx, obj_id, spec, status, headers, meta=state.meta)
        self.commit(ctx)
        self.after_commit(state.after_commit)
        return response

    def render_stored(self, resource, ctx, id_, spec, status=200, headers=None, meta=None):
        """The answer for a change about to be committed: everything pending is flushed, then the
        row is read back as the database holds it (as a read after the commit would) and
        rendered, so the commit is the request's last use of the database."""
        self.flush(ctx)
        ctx.session.expire_all()
        return self.render(resource, resource.read(ctx, id_, spec), spec, ctx, status, headers, meta=meta)

    def after_commit(self, callbacks):
        """Steps that follow a committed change (mail): a failure is logged, never the answer."""
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - the change is committed: its answer stands
                log.exception("a step after a committed change failed; the change stands")


def _check_uri_length():
    """A request whose path and query string together exceed MAX_URI_LENGTH bytes is a 414, a JSON:API
    error like any other (the HTTP server in front must let such request lines through: gunicorn.conf.py)."""
    raw = request.environ
    length = len(raw.get("SCRIPT_NAME", "")) + len(raw.get("PATH_INFO", "")) + len(raw.get("QUERY_STRING", ""))
    if length > MAX_URI_LENGTH:
        raise JsonApiError(414, "uri_too_long", "URI too long",
                           f"The path and query string may be at most {MAX_URI_LENGTH} bytes long.")


def _jsonapi_media_type(response):
    """Every JSON answer of the blueprint, whichever view produced it, is a JSON:API document."""
    if response.mimetype == "application/json":
        response.mimetype = JSONAPI_MEDIA_TYPE
    return response


def _is_foreign_key_violation(exc):
    text = str(getattr(exc, "orig", exc)).lower()
    return "foreign key" in text


def _check_if_match(resource, obj):
    if request.if_match and not request.if_match.contains(resource.etag(obj).strip('"')) \
            and not request.if_match.star_tag:
        raise JsonApiError(412, "precondition_failed", "Precondition failed",
                           "If-Match does not match the current ETag of this resource.", header="If-Match")


def _register_routes(api, resource):
    bp, t = api.blueprint, resource.type

    def list_view():
        ctx = api.begin(resource, "list")
        spec = query.parse(request.args, resource, api)
        rows, has_next, total = resource.query_page(spec, ctx)
        return api.respond(documents.collection_document(resource, rows, spec, ctx, has_next, total))

    def create_view():
        ctx = api.begin(resource, "create")
        spec = query.parse(request.args, resource, api, collection=False)
        state = resource.load(read_json_body(), ctx)
        return api.write(resource, ctx, state, spec, status=201)

    def show_view(id):
        ctx = api.begin(resource, "show")
        spec = query.parse(request.args, resource, api, collection=False)
        obj = resource.read(ctx, id, spec)
        etag = resource.etag(obj)
        if request.if_none_match and request.if_none_match.contains(etag.strip('"')):
            return Response(status=304, headers={"ETag": etag})
        return api.render(resource, obj, spec, ctx)

    def update_view(id):
        ctx = api.begin(resource, "update", authorize=False)
        spec = query.parse(request.args, resource, api, collection=False)
        body = read_json_body()
        obj = api.load_for_change(ctx, resource, id, "update")
        _check_if_match(resource, obj)
        state = resource.load(body, ctx, obj)
        return api.write(resource, ctx, state, spec)

    def delete_view(id):
        ctx = api.begin(resource, "delete", authorize=False)
        query.refuse_parameters(request.args, "DELETE")
        obj = api.load_for_change(ctx, resource, id, "delete")
        _check_if_match(resource, obj)
        before = snapshot(resource, obj)
        resource.delete(ctx, obj)
        api.on_change(ctx, resource, "delete", obj, before, None)
        api.commit(ctx, deleting=True)
        return "", 204

    actions = resource.actions
    collection_methods = [m for m, a in (("GET", "list"), ("POST", "create")) if a in actions]
    item_methods = [m for m, a in (("GET", "show"), ("PATCH", "update"), ("DELETE", "delete")) if a in actions]
    if collection_methods:
        bp.add_url_rule(f"/{t}", f"{t}_collection",
                        _dispatch({"GET": list_view, "POST": create_view}), methods=collection_methods)
    if item_methods:
        bp.add_url_rule(f"/{t}/<int:id>", f"{t}_item",
                        _dispatch({"GET": show_view, "PATCH": update_view, "DELETE": delete_view}),
                        methods=item_methods)
    for rel in resource.relationships.values():
        _register_relationship_routes(api, resource, rel)
    register_extra = getattr(resource, "register_routes", None)
    if register_extra:
        register_extra(api)


def _dispatch(views):
    def view(**kwargs):
        return views[request.method](**kwargs)
    return view


def _related_select(api, resource, rel, ctx, obj):
    """(target resource, predicate on the target's rows that are related to `obj`)."""
    target = api.resource(rel.type)
    if rel.fk is not None:  # the key is on our row: no join, and a null key relates nothing
        value = getattr(obj, rel.fk)
        return target, (target.model.id == value) if value is not None else false()
    return target, with_parent(obj, getattr(resource.model, rel.attribute))


def _register_relationship_routes(api, resource, rel):
    bp, t, name = api.blueprint, resource.type, rel.name

    def related_view(id):
        ctx = api.begin(resource, "show")
        obj = resource.get(ctx, id)
        target, predicate = _related_select(api, resource, rel, ctx, obj)
        if rel.many:
            spec = query.parse(request.args, target, api)
            rows, has_next, total = target.query_page(spec, ctx, extra_predicates=[predicate])
            return api.respond(documents.collection_document(target, rows, spec, ctx, has_next, total))
        spec = query.parse(request.args, target, api, collection=False)
        stmt = target.base_select(ctx).where(predicate).options(*target.loader_options(spec, ctx))
        related = ctx.session.scalars(stmt.limit(1)).first()
        if related is None:
            return api.respond({"data": None, "links": {"self": request.base_url}, "jsonapi": documents.JSONAPI_OBJECT})
        document = documents.single_document(target, related, spec, ctx)
        document["links"]["self"] = request.base_url
        return api.respond(document)

    def linkage_view(id):
        own = f"{{base}}/{t}/{id}"
        if request.method == "GET":
            ctx = api.begin(resource, "show")
            obj = resource.get(ctx, id)
            target, predicate = _related_select(api, resource, rel, ctx, obj)
            # request.url is an IRI (werkzeug decodes the query); a link must be a URI-reference.
            links = {"self": iri_to_uri(request.url), "related": own.format(base=ctx.base_url) + f"/{name}"}
            if rel.many:
                spec = query.parse(request.args, target, api)
                rows, has_next, total = target.query_page(spec, ctx, extra_predicates=[predicate])
                document = {"data": [{"type": target.type, "id": str(r.id)} for r in rows],
                            "links": {**documents.page_links(spec, has_next, total, rows[-1].id if rows else None),
                                      **links}}
                if total is not None:
                    document["meta"] = {"count": total}
            else:
                query.parse(request.args, target, api, collection=False)
                stmt = select(target.model.id).select_from(target.model).where(predicate)
                visible = target.visible(ctx)
                if visible is not None:
                    stmt = stmt.where(visible)
                related_id = ctx.session.scalar(stmt.limit(1))
                document = {"data": None if related_id is None else {"type": target.type, "id": str(related_id)},
                            "links": links}
            document["jsonapi"] = documents.JSONAPI_OBJECT
            return api.respond(document)
        return _write_linkage(api, resource, rel, id)

    # JSON:API: to-many relationships take PATCH, POST and DELETE, to-one only PATCH (other
    # methods are a 405 from routing); an update the relationship does not support is a 403.
    writes = ["PATCH", "POST", "DELETE"] if rel.many else ["PATCH"]
    bp.add_url_rule(f"/{t}/<int:id>/{name}", f"{t}_{name}_related", related_view, methods=["GET"])
    bp.add_url_rule(f"/{t}/<int:id>/relationships/{name}", f"{t}_{name}_linkage", linkage_view,
                    methods=["GET", *writes])


def _write_linkage(api, resource, rel, id):
    """PATCH a to-one relationship backed by a foreign key; to-many writes are the resource's."""
    ctx = api.begin(resource, "update", authorize=False)
    query.refuse_parameters(request.args, "A relationship write")
    supported = rel.writable and (hasattr(resource, "write_relationship") if rel.many else rel.fk is not None)
    # A write the relationship does not support is a 403 whatever the body (or none) says.
    body = read_json_body() if supported else None
    obj = api.load_for_change(ctx, resource, id, "update")
    if not supported:
        raise JsonApiError(403, "read_only", "Forbidden",
                           f"{resource.type}.{rel.name} cannot be changed through this endpoint.")
    _check_if_match(resource, obj)
    if rel.many:
        before, after = resource.write_relationship(ctx, obj, rel, request.method, body)
        api.flush(ctx)
        api.on_change(ctx, resource, "update", obj, {rel.name: before}, {rel.name: after})
        api.commit(ctx)
        return "", 204
    if not isinstance(body, dict) or "data" not in body:
        raise JsonApiError(400, "invalid_document", "Bad request", "The body must be {\"data\": ...}.", pointer="")
    linkage = body["data"]
    pointer = "/data"
    if linkage is None:
        if not resource.link_nullable(rel):
            raise JsonApiError(422, "invalid_value", "Invalid attribute",
                               f"{resource.type}.{rel.name} is required: it cannot be emptied.", pointer=pointer)
        value = None
    else:
        if not isinstance(linkage, dict) or not isinstance(linkage.get("type"), str) \
                or not isinstance(linkage.get("id"), str):
            raise JsonApiError(400, "invalid_document", "Bad request",
                               "data must be null or a resource identifier {\"type\", \"id\"}.", pointer=pointer)
        if api.canonical_type(linkage["type"]) != rel.type:
            raise conflict(f"{rel.name} takes {rel.type}, not {linkage['type']!r}.", code="type_mismatch",
                           pointer="/data/type")
        if not linkage["id"].isdigit():
            raise JsonApiError(404, "not_found", "Not found", f"There is no {rel.type} with id {linkage['id']!r}.")
        value = int(linkage["id"])
    state = WriteState(resource, ctx, {rel.fk: value}, {rel.fk: pointer}, obj)
    resource.prepare(state)
    before = snapshot(resource, obj, [rel.fk])
    resource.update(state)
    api.on_change(ctx, resource, "update", obj, before, snapshot(resource, obj, [rel.fk]))
    api.commit(ctx)
    return "", 204
