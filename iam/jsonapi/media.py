"""Content negotiation and request-body decoding.

Bodies may come as `application/vnd.api+json` (parameters `ext`/`profile` only) or, for
older clients, `application/json`. The JSON is parsed strictly: no NaN/Infinity, and no
string that a database cannot store (NUL characters, lone surrogates), so such input is a
400 here instead of a driver error later.

Extensions (JSON:API 1.1, Content Negotiation): the server supports those in
SUPPORTED_EXTENSIONS (none), the one list the checks below and the OpenAPI document read.
A `Content-Type` whose `ext` names any other URI is a 415; an `Accept` whose every JSON:API
instance is unusable (a parameter other than ext/profile, or an `ext` naming an unsupported
URI), and that lists no other type we answer with, is a 406. `profile` is allowed and ignored
(a server must ignore profiles it does not know). Answers name no `ext`: none is applied.
"""
import json
import math

from flask import request

JSONAPI_MEDIA_TYPE = "application/vnd.api+json"
_ALLOWED_JSONAPI_PARAMS = {"ext", "profile"}
# The JSON:API extensions (their URIs) this server applies: none yet.
SUPPORTED_EXTENSIONS = frozenset()


def _parse_media_range(item):
    """`type/subtype; a=b; q=0.5` -> ('type/subtype', {'a': 'b'}, q)."""
    parts = [p.strip() for p in item.split(";")]
    mime = parts[0].lower()
    params, q = {}, 1.0
    for part in parts[1:]:
        if not part:
            continue
        name, _, value = part.partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
            if math.isnan(q):
                q = 0.0
        else:
            params[name] = value
    return mime, params, q


def _unsupported_extensions(params):
    """The URIs of an `ext` parameter (a space-separated list) that the server does not support."""
    return [uri for uri in params.get("ext", "").split() if uri not in SUPPORTED_EXTENSIONS]


def _usable_jsonapi(params):
    """A JSON:API media type instance we can answer or read: ext/profile only, known extensions."""
    return set(params) <= _ALLOWED_JSONAPI_PARAMS and not _unsupported_extensions(params)


def check_content_type():
    """415 unless the body's media type is one we read."""
    from .errors import JsonApiError  # errors imports this module

    raw = request.headers.get("Content-Type")
    if not raw:
        raise JsonApiError(415, "unsupported_media_type", "Unsupported media type",
                           f"Send the body as {JSONAPI_MEDIA_TYPE} (or application/json).",
                           header="Content-Type")
    mime, params, _ = _parse_media_range(raw)
    if mime == "application/json":
        return
    if mime == JSONAPI_MEDIA_TYPE and set(params) <= _ALLOWED_JSONAPI_PARAMS:
        unsupported = _unsupported_extensions(params)
        if not unsupported:
            return
        raise JsonApiError(415, "unsupported_media_type", "Unsupported media type",
                           f"Content-Type names the extension {unsupported[0]!r}, which this server does "
                           f"not support (supported: {', '.join(sorted(SUPPORTED_EXTENSIONS)) or 'none'}).",
                           header="Content-Type")
    raise JsonApiError(415, "unsupported_media_type", "Unsupported media type",
                       f"{raw!r} is not accepted: send {JSONAPI_MEDIA_TYPE} (parameters ext and "
                       "profile only) or application/json.", header="Content-Type")


def check_accept():
    """406 when the client accepts none of the media types we answer with."""
    from .errors import JsonApiError

    raw = request.headers.get("Accept")
    if not raw or not raw.strip():
        return
    saw_jsonapi = saw_extension = False
    for item in raw.split(","):
        if not item.strip():
            continue
        mime, params, q = _parse_media_range(item)
        if q <= 0:
            continue
        if mime == JSONAPI_MEDIA_TYPE:
            saw_jsonapi = True
            if _usable_jsonapi(params):
                return
            saw_extension = saw_extension or set(params) <= _ALLOWED_JSONAPI_PARAMS
        elif mime in ("application/json", "application/*", "*/*"):
            return
    if saw_extension:
        detail = (f"{JSONAPI_MEDIA_TYPE} is only listed with extensions this server does not support "
                  f"(supported: {', '.join(sorted(SUPPORTED_EXTENSIONS)) or 'none'}).")
    elif saw_jsonapi:
        detail = f"{JSONAPI_MEDIA_TYPE} is only listed with parameters other than ext/profile."
    else:
        detail = f"This server answers with {JSONAPI_MEDIA_TYPE}."
    raise JsonApiError(406, "not_acceptable", "Not acceptable", detail, header="Accept")


def bodyless_answers(response):
    """after_request for the whole app: an answer without a body has no media type.

    A 204, a 304 or a 1xx carries no body, so no `Content-Type` (Flask gives every answer
    `text/html` by default) and no `Content-Length` (RFC 9110 forbids it on a 204). An OPTIONS
    request answered with an empty 200 (Flask's automatic answer, which CORS preflights get) is
    a 204 like them, its `Allow` kept."""
    status = response.status_code
    if (status == 200 and request.method == "OPTIONS" and not response.is_streamed
            and not response.get_data()):
        response.status_code = status = 204
    if status in (204, 304) or 100 <= status < 200:
        if not response.is_streamed:
            response.set_data(b"")
        for name in ("Content-Type", "Content-Length"):
            response.headers.pop(name, None)
    return response


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


# Whole numbers a JSON document may carry: what the response encoder (orjson) and the JSON
# column decoder read back exactly (signed and unsigned 64 bits). Beyond them a stored value
# would come back as a float, or not at all.
_SMALLEST_INT, _LARGEST_INT = -2 ** 63, 2 ** 64 - 1


def _find(value, pointer, bad, bad_key=None):
    """The pointer of the first leaf of a JSON value for which `bad(leaf)` holds (or of the first
    object key for which `bad_key(key)` does), else None."""
    if isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            child = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if bad_key is not None and isinstance(key, str) and bad_key(key):
                return child
            found = _find(item, child, bad, bad_key)
            if found is not None:
                return found
        return None
    return pointer if bad(value) else None


def _unstorable_value(value):
    """A string a database cannot store, or a number that is not finite."""
    if isinstance(value, str):
        return _unstorable(value)
    return isinstance(value, float) and not math.isfinite(value)


def _too_large(value):
    return isinstance(value, int) and not _SMALLEST_INT <= value <= _LARGEST_INT


def _unstorable(text):
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_json_body(required=True):
    """The decoded JSON body, after the media-type check; a 400 for anything malformed."""
    from .errors import JsonApiError, invalid_field

    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise JsonApiError(400, "missing_body", "Bad request", "A JSON request body is required.",
                               pointer="")
        return None
    check_content_type()
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise JsonApiError(400, "invalid_json", "Bad request", f"The body is not valid JSON: {exc}",
                           pointer="") from None
    bad = _find(body, "", _unstorable_value, bad_key=_unstorable)
    if bad is not None:
        raise JsonApiError(400, "invalid_characters", "Bad request",
                           "Strings may not contain NUL characters or unpaired surrogates, "
                           "and numbers must be finite.",
                           pointer=bad or "/")
    too_large = _find(body, "", _too_large)
    if too_large is not None:
        raise invalid_field(too_large or "/", "Whole numbers must be within 64 bits "
                                              "(from -2^63 to 2^64 - 1).")
    return body
