"""SCIM 2.0 at /scim/v2 (contract section 11; RFC 7643, RFC 7644): identity providers provision
an organization's users and groups.

- `auth.py`: the caller, an API key with `{"scim": true}`, acting on its account's organization;
- `schemas.py`: ServiceProviderConfig, ResourceTypes and Schemas, exactly what is stored;
- `users.py`, `groups.py`: the two resources over the same rows as the JSON:API;
- `attributes.py`: what each filterable and sortable attribute is in SQL (`filters.py` compiles
  SCIM filters with it: filtering, sorting, paging and counting happen in SQL);
- `protocol.py`: list parameters, ETags, projection, PATCH;
- `errors.py`: SCIM's error bodies.

Every query is scoped to the caller's organization: another organization's ids answer 404.
"""
from flask import Blueprint, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from ..extensions import db
from ..models import Account, Group
from ..jsonapi.errors import answer_for
from . import attributes, groups, protocol, schemas, users
from .auth import authenticate
from .errors import ScimError, answer, error_response, not_found
from .filters import InvalidFilter, compile_filter, compile_sort, sort_order_clauses

PREFIX = "/scim/v2"


class Kind:
    def __init__(self, name, module, filters, core_urn, urns):
        self.name, self.module, self.filters, self.core_urn, self.urns = name, module, filters, core_urn, urns


USERS = Kind("User", users, attributes.USER_ATTRIBUTES, schemas.USER, (schemas.USER, schemas.ENTERPRISE))
GROUPS = Kind("Group", groups, attributes.GROUP_ATTRIBUTES, schemas.GROUP, (schemas.GROUP,))


def _base():
    return request.host_url.rstrip("/") + PREFIX


def _rows(kind, query):
    if kind is USERS:
        return [(row[0], row[1]) for row in db.session.execute(query)]
    return list(db.session.scalars(query))


def _render_many(kind, rows, wanted=None):
    documents = kind.module.render_many(rows, _base())
    if kind is USERS:
        documents = [users.returned(document, wanted) for document in documents]
    return documents


def _id_column(kind):
    return Account.id if kind is USERS else Group.id


def _query(kind, caller, filter_text):
    query = kind.module.base_query(caller)
    if filter_text:
        if not isinstance(filter_text, str):
            raise ScimError(400, "filter is a string.", "invalidFilter")
        try:
            query = query.where(compile_filter(filter_text, kind.filters, kind.urns))
        except InvalidFilter as invalid:
            raise ScimError(400, str(invalid), "invalidFilter") from None
    return query


def _list(kind, caller, source):
    filter_text, sort_by, descending, start, count, wanted, excluded = protocol.list_parameters(source)
    query = _query(kind, caller, filter_text)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    order = []
    if sort_by:
        try:
            order += sort_order_clauses(compile_sort(sort_by, kind.filters, kind.urns), descending)
        except InvalidFilter as invalid:
            raise ScimError(400, str(invalid), "invalidValue") from None
    order.append(_id_column(kind).desc() if descending and sort_by else _id_column(kind))  # a total order
    resources = []
    if count:
        rows = _rows(kind, query.order_by(*order).offset(start - 1).limit(count))
        resources = [protocol.project(doc, wanted, excluded, kind.core_urn)
                     for doc in _render_many(kind, rows, wanted)]
    return {"schemas": [schemas.LIST], "totalResults": total, "startIndex": start, "itemsPerPage": len(resources),
            "Resources": resources}


def _document(kind, found):
    if kind is USERS:
        account, person = found
        return users.render_many([(account, person)], _base())[0]
    return groups.render_many([found], _base())[0]


def _single(kind, found, status=200):
    source = request.args
    wanted, excluded = protocol._names(source.get("attributes")), protocol._names(source.get("excludedAttributes"))
    document = _document(kind, found)
    if kind is USERS:
        document = users.returned(document, wanted)
    headers = {"ETag": document["meta"]["version"]}
    if status == 201:
        headers["Location"] = document["meta"]["location"]
    return answer(status, protocol.project(document, wanted, excluded, kind.core_urn), headers)


def _version(kind, found):
    return users.version_of(*found) if kind is USERS else groups.version_of(found)


def _write(kind, caller, resource_id, method):
    found = kind.module.find(caller, resource_id)
    protocol.check_if_match(_version(kind, found))
    if method == "DELETE":
        if kind is USERS:
            users.delete(caller, *found)
        else:
            groups.delete_group(caller, found)
        db.session.commit()
        response = answer(204, {})
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
        return response
    payload = protocol.body()
    if method == "PATCH":
        document = protocol.apply_patch(_document(kind, found), payload, kind.core_urn, kind.module.MULTI_VALUED)
    else:
        document = payload
    if kind is USERS:
        found = users.replace(caller, found[0], found[1], document)
    else:
        found = groups.replace(caller, found, document)
    db.session.commit()
    return _single(kind, kind.module.find(caller, resource_id))


def _create(kind, caller):
    document = protocol.body()
    created = kind.module.create(caller, document)
    db.session.commit()
    resource_id = str(created[0].id if kind is USERS else created.id)
    return _single(kind, kind.module.find(caller, resource_id), 201)


def _handle(error):
    if isinstance(error, ScimError):
        db.session.rollback()
        return error_response(error)
    if isinstance(error, IntegrityError):  # a parallel write took the name or the email first
        db.session.rollback()
        return error_response(ScimError(409, "The change conflicts with another user or group.", "uniqueness"))
    if isinstance(error, HTTPException):
        if (error.code or 500) < 400:
            return error
        return error_response(ScimError(error.code, error.description or error.name))
    response = answer_for(error)  # logged as the API logs it; status and Retry-After kept
    status = response.status_code
    scim = error_response(ScimError(status, "The service is unavailable for a moment; try again." if status == 503
                                    else "The server failed to handle this request; it has been logged."))
    if "Retry-After" in response.headers:
        scim.headers["Retry-After"] = response.headers["Retry-After"]
    return scim


def init_app(app):
    blueprint = Blueprint("scim", __name__, url_prefix=PREFIX)

    @blueprint.before_request
    def _authenticate():
        request.scim_caller = authenticate()

    @blueprint.get("/ServiceProviderConfig")
    def scim_service_provider_config():
        return answer(200, schemas.service_provider_config(_base()))

    def listed(found):
        return answer(200, {"schemas": [schemas.LIST], "totalResults": len(found), "startIndex": 1,
                            "itemsPerPage": len(found), "Resources": found})

    def one_of(found, wanted, what):
        for item in found:
            if item["id"] == wanted:
                return answer(200, item)
        raise not_found(what)

    @blueprint.get("/ResourceTypes")
    def scim_resource_types():
        return listed(schemas.resource_types(_base()))

    @blueprint.get("/ResourceTypes/<name>")
    def scim_resource_type(name):
        return one_of(schemas.resource_types(_base()), name, "resource type")

    @blueprint.get("/Schemas")
    def scim_schemas():
        return listed(schemas.schemas(_base()))

    @blueprint.get("/Schemas/<path:urn>")
    def scim_schema(urn):
        return one_of(schemas.schemas(_base()), urn, "schema")

    for path, kind in (("/Users", USERS), ("/Groups", GROUPS)):
        name = kind.name.lower()

        def collection(kind=kind):
            caller = request.scim_caller
            if request.method == "POST":
                return _create(kind, caller)
            return answer(200, _list(kind, caller, request.args))

        def search(kind=kind):
            payload = protocol.body()
            return answer(200, _list(kind, request.scim_caller, payload))

        def item(resource_id, kind=kind):
            caller = request.scim_caller
            if request.method == "GET":
                return _single(kind, kind.module.find(caller, resource_id))
            return _write(kind, caller, resource_id, request.method)

        blueprint.add_url_rule(path, f"scim_{name}s", collection, methods=["GET", "POST"])
        blueprint.add_url_rule(f"{path}/.search", f"scim_{name}s_search", search, methods=["POST"])
        blueprint.add_url_rule(f"{path}/<resource_id>", f"scim_{name}", item, methods=["GET", "PUT", "PATCH", "DELETE"])

    @blueprint.post("/.search")
    def scim_search():
        """Both resource types at once: Users, then Groups, paged as one list. A filter naming
        an attribute one type lacks searches the other only."""
        payload = protocol.body()
        found, errors = [], []
        for kind in (USERS, GROUPS):
            try:
                found.append(_list(kind, request.scim_caller, {**payload, "startIndex": 1,
                                                               "count": schemas.MAX_RESULTS}))
            except ScimError as error:
                errors.append(error)
        if not found:
            raise errors[0]
        start, count = protocol.list_parameters(payload)[3:5]
        resources = [r for answer_ in found for r in answer_["Resources"]]
        page = resources[start - 1:start - 1 + count]
        return answer(200, {"schemas": [schemas.LIST], "totalResults": sum(a["totalResults"] for a in found),
                            "startIndex": start, "itemsPerPage": len(page), "Resources": page})

    @blueprint.get("/Me")
    def scim_me():
        raise ScimError(501, "/Me is not supported: a SCIM key is an identity provider's, not a person's.")

    blueprint.register_error_handler(Exception, _handle)
    app.register_blueprint(blueprint)

    # Routing's own 404 and 405 under /scim/v2 (no view of the blueprint ran) are SCIM errors too.
    def routing_error(error):
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            response = error_response(ScimError(error.code, "No such endpoint." if error.code == 404
                                                else f"{request.method} is not allowed here."))
            if error.code == 405 and getattr(error, "valid_methods", None):
                response.headers["Allow"] = ", ".join(error.valid_methods)
            return response
        return answer_for(error)

    app.register_error_handler(404, routing_error)
    app.register_error_handler(405, routing_error)
