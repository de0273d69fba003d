"""Groups: named sets of accounts inside an organization; every member holds the group's roles."""
from sqlalchemy import Column, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import Timestamped, table_args
from .types import JSONType, UTCDateTime, utcnow

group_members = Table(
    "group_members",
    db.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)


class Group(Timestamped, db.Model):
    __tablename__ = "groups"
    __table_args__ = table_args(UniqueConstraint("organization_id", "name", name="uq_groups_organization_id_name"))

    name = mapped_column(String(255), nullable=False)
    description = mapped_column(Text, nullable=True)
    organization_id = mapped_column(ForeignKey("organizations.id"), nullable=False, index=True)
    roles = mapped_column(JSONType, nullable=False, default=list)  # [{"name", "scopes"}]
    external_id = mapped_column(String(255), nullable=True)  # the identity provider's id (SCIM)

    organization = relationship("Organization")
    members = relationship("Account", secondary=group_members, back_populates="groups", passive_deletes=True,
                           order_by="Account.id")
