"""Column types that behave the same on SQLite and PostgreSQL."""
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


def utcnow():
    """The current time, aware, in UTC, with microseconds (what every timestamp column stores)."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out.

    PostgreSQL stores `timestamptz`; SQLite stores naive UTC text. Both keep microseconds,
    so a rendered timestamp used as a filter value finds the row it came from.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def result_processor(self, dialect, coltype):
        # PostgreSQL's timestamptz arrives aware from psycopg, in the connection's time zone,
        # which is UTC (iam/config.py sets TimeZone on every connection): nothing to do per
        # value. (In another zone it would still be the same instant, aware.)
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# JSON documents: JSONB on PostgreSQL (containment operators, GIN indexes), JSON text elsewhere.
# None is stored as SQL NULL, not as the JSON value null.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def trigram_index(name, column):
    """A PostgreSQL GIN trigram index on `column`, serving ILIKE '%...%' (the `__match` filters).

    SQLite has no such index and scans; it is the embedded default, not the one that scales."""
    return Index(name, column, postgresql_using="gin",
                 postgresql_ops={column.key: "gin_trgm_ops"}).ddl_if(dialect="postgresql")
