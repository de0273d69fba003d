"""Columns every IAM table shares."""
from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from .types import UTCDateTime, utcnow


def _same_as_created(context):
    """A new row's updated_at is its created_at, to the microsecond."""
    return context.get_current_parameters().get("created_at") or utcnow()


class Timestamped:
    """`id`, `created_at`, `updated_at` and an optimistic-locking `version`.

    `version` backs the ETag: every UPDATE checks and bumps it, so two writers holding the
    same ETag cannot both win (the loser gets a 412).
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = mapped_column(UTCDateTime, nullable=False, default=_same_as_created, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls):
        return {"version_id_col": cls.version}
