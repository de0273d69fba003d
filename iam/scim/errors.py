"""SCIM's error answers (RFC 7644 section 3.12): `{"schemas": [Error], "status", "scimType", "detail"}`
as `application/scim+json`."""
from flask import jsonify

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPE = "application/scim+json"


class ScimError(Exception):
    def __init__(self, status, detail, scim_type=None, headers=None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type, self.headers = status, detail, scim_type, headers or {}


def answer(status, body, headers=None):
    response = jsonify(body)
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error):
    body = {"schemas": [ERROR_SCHEMA], "status": str(error.status), "detail": error.detail}
    if error.scim_type:
        body["scimType"] = error.scim_type
    return answer(error.status, body, error.headers)


def not_found(what="resource"):
    return ScimError(404, f"No such {what} in this organization.")


def invalid_value(detail):
    return ScimError(400, detail, "invalidValue")


def invalid_syntax(detail):
    return ScimError(400, detail, "invalidSyntax")
