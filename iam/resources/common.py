"""Filter builders shared by several IAM resources."""
import ipaddress
import hashlib
import re

from sqlalchemy import and_, or_, true

from ..jsonapi import Filter
from ..jsonapi import filters as ft


def through(relationship_attr, many=False):
    """Wrap a predicate on a related model in EXISTS (has/any) from this one."""
    def wrap(predicate):
        return relationship_attr.any(predicate) if many else relationship_attr.has(predicate)
    return wrap


def related_column_filter(name, wrap, column, ftype, doc="", nullable=True):
    """A filter named on this resource that tests a column of a related row."""
    def build(op, values, ctx):
        return wrap(ftype.build(column, op, values, ctx.dialect, nullable=nullable))
    return Filter(name, ftype, build=build, doc=doc)


def search_filter(columns_or_builders, doc):
    """Free text: every word must appear (case-insensitively) in at least one of the places."""
    def build(op, values, ctx):
        words = [w for w in re.split(r"\s+", values[0].strip()) if w]
        if not words:
            return true()  # blank search: no condition
        clauses = []
        for word in words:
            parts = []
            for place in columns_or_builders:
                parts.append(place(word) if callable(place) else place.icontains(word, autoescape=True))
            clauses.append(or_(*parts))
        return and_(*clauses)
    return Filter("search", ft.String(), build=build, operators=("eq",), doc=doc)


def digest(token):
    """SHA-256 hex digest: how high-entropy secrets (tokens, API keys) are stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_loopback(host):
    """Whether a URL's host is this machine (127.0.0.0/8, ::1, localhost): where plain http is
    allowed for a provider or a client run beside the server."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
