"""Server-wide settings: key/value configuration kept by administrators."""
from sqlalchemy import String
from sqlalchemy.orm import mapped_column

from ..extensions import db
from .base import Timestamped
from .types import JSONType


class Setting(Timestamped, db.Model):
    __tablename__ = "settings"

    key = mapped_column(String(128), nullable=False, unique=True)
    value = mapped_column(JSONType, nullable=True)
