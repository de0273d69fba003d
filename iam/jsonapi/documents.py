"""Build response documents: data, included, links and meta from the resource's schema."""
from urllib.parse import urlencode

from flask import request

from .query import DEFAULT_PAGE_SIZE, encode_cursor

JSONAPI_OBJECT = {"version": "1.1"}


def _schema_for(resource, spec, ctx, many):
    """A per-request schema: the sparse fieldset plus whatever the include paths go through."""
    only = None
    sparse = spec.fields.get(resource.type)
    if sparse is not None:
        only = {"id", *sparse, *(path[0] for path in spec.include)}
    return resource.schema_class(
        only=only, many=many, base_url=ctx.base_url, registry=resource.registry, sparse=spec.fields,
        include_paths=tuple(".".join(path) for path in spec.include),
    )


def _apply_sparse(item, sparse):
    names = sparse.get(item["type"])
    if names is None:
        return item
    for member in ("attributes", "relationships"):
        values = item.get(member)
        if values is not None:
            kept = {k: v for k, v in values.items() if k in names}
            if kept:
                item[member] = kept
            else:
                del item[member]
    return item


def resource_document(resource, objs, spec, ctx, many):
    """The `data` and `included` members for one resource or a list of them."""
    schema = _schema_for(resource, spec, ctx, many)
    dumped = schema.dump(objs)
    data = dumped["data"]
    primary = data if many else ([data] if data else [])
    for item in primary:
        _apply_sparse(item, spec.fields)
    document = {"data": data}
    if spec.include:
        seen = {(item["type"], item["id"]) for item in primary}
        included = []
        for key, item in schema.included_data.items():
            if key not in seen:
                seen.add(key)
                included.append(_apply_sparse(item, spec.fields))
        document["included"] = included
    return document


def page_links(spec, has_next, total, last_id=None):
    """self/first/prev/next (and last when the total is known), keeping every other parameter.

    In cursor mode (page[after]) next carries the cursor after the page's last row, and
    there is no prev or last: a cursor walk goes forward."""
    base = request.base_url
    pairs = [(k, v) for k, v in request.args.items(multi=True)
             if k not in ("page[number]", "page[size]", "page[after]")]
    if spec.after is not None:
        size = [("page[size]", str(spec.page_size))]

        def cursor_link(cursor):
            return base + "?" + urlencode(pairs + [("page[after]", cursor)] + size, safe="[],:")

        return {"self": request.url, "first": cursor_link(""), "prev": None,
                "next": cursor_link(encode_cursor(last_id)) if has_next and last_id is not None else None}

    def link(number):
        page = [("page[number]", str(number))]
        if spec.page_given or spec.page_size != DEFAULT_PAGE_SIZE:
            page.append(("page[size]", str(spec.page_size)))
        return base + "?" + urlencode(pairs + page, safe="[],:")

    links = {"self": request.url, "first": link(1)}
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
