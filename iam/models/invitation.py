"""Invitations: an email, an organization and roles, waiting for someone to accept them."""
from sqlalchemy import ForeignKey, Integer, String, case, func
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import Timestamped
from .types import JSONType, UTCDateTime, utcnow

INVITATION_STATUSES = ("pending", "accepted", "revoked", "expired")


class Invitation(Timestamped, db.Model):
    __tablename__ = "invitations"

    email = mapped_column(String(320), nullable=False, index=True)
    organization_id = mapped_column(ForeignKey("organizations.id"), nullable=False, index=True)
    roles = mapped_column(JSONType, nullable=False, default=list)
    invited_by_id = mapped_column(Integer, nullable=True)  # no FK: the record outlives its author
    account_id = mapped_column(Integer, nullable=True)     # the account created on acceptance
    token_digest = mapped_column(String(64), nullable=True, unique=True)
    sent_at = mapped_column(UTCDateTime, nullable=True)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    accepted_at = mapped_column(UTCDateTime, nullable=True)
    revoked_at = mapped_column(UTCDateTime, nullable=True)
    # Accepted by signing in through this provider with the invited email, not with a password.
    identity_provider_id = mapped_column(ForeignKey("identity_providers.id", ondelete="SET NULL"), nullable=True,
                                         index=True)

    organization = relationship("Organization")

    @hybrid_property
    def status(self):
        if self.revoked_at is not None:
            return "revoked"
        if self.accepted_at is not None:
            return "accepted"
        return "expired" if self.expires_at <= utcnow() else "pending"

    @status.inplace.expression
    @classmethod
    def _status_expression(cls):
        return case((cls.revoked_at.isnot(None), "revoked"), (cls.accepted_at.isnot(None), "accepted"),
                    (cls.expires_at <= func.current_timestamp(), "expired"), else_="pending")
