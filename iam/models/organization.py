"""Organizations (tenants) and their organizational-unit trees."""
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, case
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import relationship, mapped_column

from ..extensions import db
from .base import Timestamped, table_args
from .types import JSONType


class Organization(Timestamped, db.Model):
    __tablename__ = "organizations"

    name = mapped_column(String(255), nullable=False)
    slug = mapped_column(String(64), nullable=False, unique=True)
    enabled = mapped_column(Boolean, nullable=False, default=True)
    quota_limit = mapped_column(Integer, nullable=True)
    quota_usage = mapped_column(Integer, nullable=False, default=0)
    policies = mapped_column(JSONType, nullable=False, default=dict)  # like a unit's, for every member

    # passive_deletes="all": deleting a row never detaches its dependants behind the
    # caller's back; the foreign keys refuse it instead (a 409), and nothing is changed.
    accounts = relationship("Account", back_populates="organization", passive_deletes="all")
    organizational_units = relationship("OrganizationalUnit", back_populates="organization", passive_deletes="all")

    @hybrid_property
    def quota_remaining(self):
        if self.quota_limit is None:
            return None
        return max(self.quota_limit - self.quota_usage, 0)

    @quota_remaining.inplace.expression
    @classmethod
    def _quota_remaining_expression(cls):
        return case(
            (cls.quota_limit.is_(None), None),
            (cls.quota_limit > cls.quota_usage, cls.quota_limit - cls.quota_usage),
            else_=0,
        )


class OrganizationalUnit(Timestamped, db.Model):
    """A node of an organization's unit tree.

    `path` is the readable names path (`/sales/emea`); `ancestry` holds the ids from the root
    down to this unit (`/3/17/`), so "this unit and everything below it" is one indexed
    prefix match whatever the names contain.
    """

    __tablename__ = "organizational_units"
    __table_args__ = table_args(
        UniqueConstraint("organization_id", "path", name="uq_organizational_units_org_path"),
        Index("ix_organizational_units_ancestry", "ancestry", postgresql_ops={"ancestry": "varchar_pattern_ops"}),
    )

    organization_id = mapped_column(ForeignKey("organizations.id"), nullable=False, index=True)
    parent_id = mapped_column(ForeignKey("organizational_units.id"), nullable=True, index=True)
    name = mapped_column(String(255), nullable=False)
    path = mapped_column(String(4096), nullable=False)
    ancestry = mapped_column(String(1024), nullable=False)
    description = mapped_column(Text, nullable=True)
    policies = mapped_column(JSONType, nullable=False, default=dict)

    organization = relationship("Organization", back_populates="organizational_units")
    parent = relationship("OrganizationalUnit", remote_side="OrganizationalUnit.id", back_populates="children")
    children = relationship("OrganizationalUnit", back_populates="parent", passive_deletes="all")
    people = relationship("Person", back_populates="organizational_unit", passive_deletes="all")
