"""Columns every IAM table shares."""
from sqlalchemy import Integer, inspect, update
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from .types import UTCDateTime, utcnow


def _same_as_created(context):
    """A new row's updated_at is its created_at, to the microsecond."""
    return context.get_current_parameters().get("created_at") or utcnow()


# Ids are never reused after a delete (docs/API.md section 1): on SQLite that takes
# INTEGER PRIMARY KEY AUTOINCREMENT (without it SQLite hands out max(id)+1 again); PostgreSQL
# sequences never reuse. Every table with an integer `id` key carries it (migration 0009).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def table_args(*items, **options):
    """`__table_args__` for a model with an `id` key that has constraints or indexes of its own:
    them, plus the never-reuse-ids option the mixins' default carries."""
    return (*items, {**NEVER_REUSE_IDS, **options})


class NeverReusedId:
    """For a model with an integer `id` primary key: SQLite never hands an id out twice
    (AUTOINCREMENT). A model that sets its own `__table_args__` builds them with
    `table_args(...)` to keep this (tests/test_id_reuse.py checks every table)."""

    __table_args__ = NEVER_REUSE_IDS


class Timestamped(NeverReusedId):
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


def record_activity(session, obj, now, *conditions, **values):
    """Write bookkeeping (last login, last use, revocation) to `obj`'s row without a version check.

    Requests do these writes as a side effect, several at once for one row (parallel
    requests of one session, parallel logins to one account), and none of them may fail
    another with a 412 the way a client's conflicting edit does. The row still gets a new
    version and updated_at, since what it renders changed. `conditions` narrow the UPDATE
    (e.g. only if not yet revoked). The object in `session` is brought up to date, so a
    later ORM write in the same request checks against the new version. True if written.
    """
    (row_id,) = inspect(obj).identity  # not obj.id: that would reload an expired object first
    new_version = record_activity_by_id(session, type(obj), row_id, now, *conditions, **values)
    if new_version is None:
        return False
    for name, value in {**values, "updated_at": now, "version": new_version}.items():
        set_committed_value(obj, name, value)
    return True


def record_activity_by_id(session, model, row_id, now, *conditions, **values):
    """record_activity for a row no ORM object holds: the row's new version, or None if no
    row matched."""
    return session.execute(
        update(model).where(model.id == row_id, *conditions)
        .values(version=model.version + 1, updated_at=now, **values)
        .returning(model.version)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
