"""Error objects, and the handlers that make every failure one.

Everything the engine or a resource rejects raises `JsonApiError` (or a list of them in
`JsonApiErrors`); the handlers below turn those, werkzeug's HTTP errors and anything
unexpected into a JSON:API error document. Unexpected errors are logged with their trace
and answered with a bare 500, never the trace itself.
"""
import logging

from flask import current_app, jsonify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from werkzeug.exceptions import HTTPException

from .media import JSONAPI_MEDIA_TYPE

log = logging.getLogger(__name__)


class JsonApiError(Exception):
    """One error object; raising it answers with its status."""

    def __init__(self, status, code, title, detail=None, *, pointer=None, parameter=None,
                 header=None, headers=None, meta=None):
        super().__init__(detail or title)
        self.status = int(status)
        self.code = code
        self.title = title
        self.detail = detail
        self.source = {}
        if pointer is not None:
            self.source["pointer"] = pointer
        if parameter is not None:
            self.source["parameter"] = parameter
        if header is not None:
            self.source["header"] = header
        self.headers = headers or {}
        self.meta = meta

    def to_dict(self):
        error = {"status": str(self.status), "code": self.code, "title": self.title}
        if self.detail:
            error["detail"] = self.detail
        if self.source:
            error["source"] = dict(self.source)
        if self.meta:
            error["meta"] = self.meta
        return error


class JsonApiErrors(Exception):
    """Several error objects at once (one per invalid field); the status is the first one's."""

    def __init__(self, errors):
        super().__init__("; ".join(e.detail or e.title for e in errors))
        self.errors = list(errors)
        self.status = self.errors[0].status
        self.headers = {}
        for e in self.errors:
            self.headers.update(e.headers)


def json_pointer(*tokens):
    """An RFC 6901 pointer to these member names/indices: `~` and `/` in a token are escaped.

    Member names often come from the client (an unknown attribute `a/b` is `/data/attributes/a~1b`)."""
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


# Constructors for the errors the engine raises most; the codes are part of the contract.

def bad_parameter(parameter, detail, code="invalid_parameter"):
    return JsonApiError(400, code, "Invalid query parameter", detail, parameter=parameter)


def bad_request(detail, pointer=None, code="bad_request"):
    return JsonApiError(400, code, "Bad request", detail, pointer=pointer)


def invalid_field(pointer, detail, code="invalid_value"):
    return JsonApiError(422, code, "Invalid attribute", detail, pointer=pointer)


def conflict(detail, code="conflict", pointer=None):
    return JsonApiError(409, code, "Conflict", detail, pointer=pointer)


def forbidden(detail="You are not allowed to do this.", pointer=None):
    return JsonApiError(403, "forbidden", "Forbidden", detail, pointer=pointer)


def unauthenticated(detail="Authentication is required."):
    return JsonApiError(401, "unauthenticated", "Unauthenticated", detail,
                        headers={"WWW-Authenticate": 'Bearer realm="iam"'})


# Codes for werkzeug's own errors (routing, size limits, methods).
_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    412: "precondition_failed", 413: "request_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 429: "rate_limited", 431: "headers_too_large",
}


def error_response(errors, status, headers=None):
    response = jsonify({"errors": [e.to_dict() for e in errors], "jsonapi": {"version": "1.1"}})
    response.status_code = status
    response.mimetype = JSONAPI_MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_jsonapi_error(error):
    return error_response([error], error.status, error.headers)


def _handle_jsonapi_errors(error):
    return error_response(error.errors, error.status, error.headers)


def _handle_http_exception(error):
    status = error.code or 500
    if status < 400:  # redirects raised as exceptions (e.g. strict slashes) keep their response
        return error
    title = error.name
    detail = error.description
    if status == 404:
        detail = "No such endpoint or resource."
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
        detail = "Allowed methods: " + ", ".join(error.valid_methods) + "."
    for name, value in (error.get_headers() if hasattr(error, "get_headers") else []):
        if name.lower() not in ("content-type",):
            headers[name] = value
    err = JsonApiError(status, _HTTP_CODES.get(status, "error"), title, detail)
    return error_response([err], status, headers)


def _handle_integrity_error(error):
    """Safety net: a constraint the database enforced that no check caught first is a 409."""
    log.info("constraint violation reached the error handler: %s", error.orig)
    err = JsonApiError(409, "conflict", "Conflict",
                       "The change conflicts with stored data (a unique value or a reference).")
    return error_response([err], 409)


def _handle_deleted(error):
    """Safety net: the row was deleted by someone else between two reads of this request."""
    err = JsonApiError(404, "not_found", "Not found", "The resource was deleted meanwhile.")
    return error_response([err], 404)


def _handle_stale_data(error):
    err = JsonApiError(412, "precondition_failed", "Precondition failed",
                       "The resource was changed by someone else meanwhile; fetch it and retry.")
    return error_response([err], 412)


def _handle_unexpected(error):
    if isinstance(error, HTTPException):
        return _handle_http_exception(error)
    log.exception("unhandled error")
    if current_app.config.get("PROPAGATE_UNEXPECTED_ERRORS"):
        raise error
    err = JsonApiError(500, "internal_error", "Internal server error",
                       "The server failed to handle this request; it has been logged.")
    return error_response([err], 500)


def register_error_handlers(app):
    """Every error, from any blueprint or from routing itself, becomes a JSON:API document."""
    app.register_error_handler(JsonApiError, _handle_jsonapi_error)
    app.register_error_handler(JsonApiErrors, _handle_jsonapi_errors)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(IntegrityError, _handle_integrity_error)
    app.register_error_handler(StaleDataError, _handle_stale_data)
    app.register_error_handler(ObjectDeletedError, _handle_deleted)
    app.register_error_handler(Exception, _handle_unexpected)
