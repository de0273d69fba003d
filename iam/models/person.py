"""People: the humans behind accounts."""
from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy.orm import mapped_column, relationship

from ..extensions import db
from .base import Timestamped
from .types import JSONType, trigram_index


class Person(Timestamped, db.Model):
    __tablename__ = "people"

    organization_id = mapped_column(ForeignKey("organizations.id"), nullable=False, index=True)
    organizational_unit_id = mapped_column(ForeignKey("organizational_units.id"), nullable=True, index=True)
    first_name = mapped_column(String(255), nullable=True)
    middle_name = mapped_column(String(255), nullable=True)
    last_name = mapped_column(String(255), nullable=True)
    picture_url = mapped_column(String(2048), nullable=True)
    gender = mapped_column(String(64), nullable=True)
    birthday = mapped_column(Date, nullable=True)
    secondary_email = mapped_column(String(320), nullable=True)
    contact_number = mapped_column(String(64), nullable=True)
    physical_address = mapped_column(Text, nullable=True)
    facets = mapped_column(JSONType, nullable=False, default=list)
    # What SCIM provisions besides the names (iam/scim/): the name to show, and the enterprise
    # extension's employee number and department.
    display_name = mapped_column(String(255), nullable=True)
    employee_number = mapped_column(String(64), nullable=True)
    department = mapped_column(String(255), nullable=True)

    organization = relationship("Organization")
    organizational_unit = relationship("OrganizationalUnit", back_populates="people")
    account = relationship("Account", back_populates="person", uselist=False, passive_deletes="all")


# The `__match` filters and `search` (ILIKE '%...%' on PostgreSQL), see migration 0007.
for _column in (Person.first_name, Person.middle_name, Person.last_name, Person.secondary_email,
                Person.contact_number):
    trigram_index(f"ix_people_{_column.key}_trgm", _column)
