"""A generic JSON:API engine over SQLAlchemy and marshmallow-jsonapi.

It knows JSON:API and SQL, nothing about IAM: resources declare themselves
(resource.py), requests are parsed (query.py), turned into SQL (filters.py,
resource.py), rendered (schema.py, documents.py) and every failure becomes an
error document (errors.py).
"""
from .errors import JsonApiError, JsonApiErrors, register_error_handlers
from .filters import Filter
from .resource import Resource, WriteState
from .views import Api, Policy, RequestContext

__all__ = ["Api", "Filter", "JsonApiError", "JsonApiErrors", "Policy", "RequestContext", "Resource",
           "WriteState", "register_error_handlers"]
