"""Build response documents: data, included, links and meta from the resource's schema."""
from functools import lru_cache
from urllib.parse import urlencode

from flask import request
from werkzeug.sansio.utils import get_current_url
from werkzeug.urls import iri_to_uri

from .query import DEFAULT_PAGE_SIZE, encode_cursor
from .render import Renderer, include_tree

JSONAPI_OBJECT = {"version": "1.1"}


def resource_document(resource, objs, spec, ctx, many):
    """The `data` and `included` members for one resource or a list of them."""
    renderer = Renderer(resource.registry, ctx.base_url, spec.fields)
    tree = include_tree(spec.include)
    schema_class = resource.schema_class
    if many:
        data = renderer.primary(schema_class, objs, tree)
    else:
        data = None if objs is None else renderer.primary(schema_class, [objs], tree)[0]
    document = {"data": data}
    if spec.include:
        document["included"] = renderer.included
    return document


@lru_cache(maxsize=256)
def _request_urls(scheme, host, root_path, path, query_string):
    """(the request's URL as a URI, its URL without the query string), as werkzeug's `url`
    and `base_url` are built (an IRI conversion each, and one back for `self`): a pure
    function of the request line, kept for the URLs seen last."""
    return (iri_to_uri(get_current_url(scheme, host, root_path, path, query_string)),
            get_current_url(scheme, host, root_path, path))


def page_links(spec, has_next, total, last_id=None):
    """self/first/prev/next (and last when the total is known), keeping every other parameter.

    In cursor mode (page[after]) next carries the cursor after the page's last row, and
    there is no prev or last: a cursor walk goes forward."""
    own, base = _request_urls(request.scheme, request.host, request.root_path, request.path, request.query_string)
    # The other parameters are encoded once; each link appends its page parameters
    # (urlencode joins pairs with "&": the same string as encoding them all together).
    kept = urlencode([(k, v) for k, v in request.args.items(multi=True)
                      if k not in ("page[number]", "page[size]", "page[after]")], safe=",:")
    base = base + "?" + kept + "&" if kept else base + "?"
    if spec.after is not None:
        size = [("page[size]", str(spec.page_size))]

        def cursor_link(cursor):
            return base + urlencode([("page[after]", cursor)] + size, safe=",:")

        return {"self": own, "first": cursor_link(""), "prev": None,
                "next": cursor_link(encode_cursor(last_id)) if has_next and last_id is not None else None}

    def link(number):
        page = [("page[number]", str(number))]
        if spec.page_given or spec.page_size != DEFAULT_PAGE_SIZE:
            page.append(("page[size]", str(spec.page_size)))
        return base + urlencode(page, safe=",:")

    links = {"self": own, "first": link(1)}
    links["prev"] = link(spec.page_number - 1) if spec.page_number > 1 else None
    links["next"] = link(spec.page_number + 1) if has_next else None
    if total is not None:
        last = max(1, -(-total // spec.page_size))
        links["last"] = link(last)
    return links


def collection_document(resource, rows, spec, ctx, has_next, total):
    document = resource_document(resource, rows, spec, ctx, many=True)
    document["links"] = page_links(spec, has_next, total, rows[-1].id if rows else None)
    meta = {}
    if total is not None:
        meta["count"] = total
    if meta:
        document["meta"] = meta
    document["jsonapi"] = JSONAPI_OBJECT
    return document


def single_document(resource, obj, spec, ctx):
    document = resource_document(resource, obj, spec, ctx, many=False)
    document["links"] = {"self": f"{ctx.base_url}/{resource.type}/{obj.id}"}
    document["jsonapi"] = JSONAPI_OBJECT
    return document
