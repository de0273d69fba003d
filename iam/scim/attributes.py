"""What each filterable and sortable SCIM attribute is in SQL (for filters.py): the same columns
users.py and groups.py render and write."""
from sqlalchemy import exists, func, select

from ..models import Account, Group, Person, group_members
from .filters import Attr, MultiValued

USER_ATTRIBUTES = {
    "id": Attr(Account.id, type="id"),
    "username": Attr(func.coalesce(Account.user_name, Account.email)),
    "externalid": Attr(Account.external_id, case_exact=True),
    "active": Attr(Account.enabled),
    "displayname": Attr(Person.display_name),
    "name.givenname": Attr(Person.first_name),
    "name.middlename": Attr(Person.middle_name),
    "name.familyname": Attr(Person.last_name),
    "emails": MultiValued(rows=[{"value": Attr(Account.email), "type": "work", "primary": True},
                                {"value": Attr(Person.secondary_email), "type": "other", "primary": False}]),
    "meta.created": Attr(Account.created_at),
    "meta.lastmodified": Attr(Account.updated_at),
    "employeenumber": Attr(Person.employee_number),
    "department": Attr(Person.department),
    "manager.value": Attr(Account.manager_id, type="id"),
    "groups": MultiValued(
        exists=lambda condition: exists(select(1).select_from(group_members).where(
            group_members.c.account_id == Account.id, condition)),
        attributes={"value": Attr(group_members.c.group_id, type="id")}),
}

GROUP_ATTRIBUTES = {
    "id": Attr(Group.id, type="id"),
    "displayname": Attr(Group.name),
    "externalid": Attr(Group.external_id, case_exact=True),
    "meta.created": Attr(Group.created_at),
    "meta.lastmodified": Attr(Group.updated_at),
    "members": MultiValued(
        exists=lambda condition: exists(select(1).select_from(group_members).where(
            group_members.c.group_id == Group.id, condition)),
        attributes={"value": Attr(group_members.c.account_id, type="id"), "type": "User"}),
}
