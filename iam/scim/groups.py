"""SCIM Groups: the organization's groups (contract section 11). `displayName` is the group's
name (unique in the organization: 409 `uniqueness`), `externalId` the identity provider's id,
`members` its accounts (users of the same organization only: another id is a 400). The roles
a group grants are not SCIM's business: they stay as the JSON:API set them. The ETag is the
group's version; a change of members changes it too. Writes are audited (`groups`, `via: scim`)."""
from sqlalchemy import delete, insert, select

from .. import audit
from ..extensions import db
from ..models import Account, Group, Person, group_members, utcnow
from . import schemas
from .errors import ScimError, invalid_value, not_found
from .protocol import etag, taken
from .users import provisioned

MULTI_VALUED = frozenset({"members"})


def location(base, group_id):
    return f"{base}/Groups/{group_id}"


def version_of(group):
    return etag(str(group.version))


def members_of(group_ids):
    """group id -> [(account id, display)], in one statement."""
    found = {}
    if not group_ids:
        return found
    rows = db.session.execute(
        select(group_members.c.group_id, Account.id, Account.email, Person.display_name)
        .join(Account, Account.id == group_members.c.account_id).outerjoin(Person, Person.id == Account.person_id)
        .where(group_members.c.group_id.in_(group_ids)).order_by(group_members.c.group_id, Account.id))
    for group_id, account_id, email, display in rows:
        found.setdefault(group_id, []).append((account_id, display or email))
    return found


def render(group, base, members):
    document = {"schemas": [schemas.GROUP], "id": str(group.id), "displayName": group.name,
                "members": [{"value": str(account_id), "type": "User", "$ref": f"{base}/Users/{account_id}"}
                            for account_id, _ in members]}
    if group.external_id:
        document["externalId"] = group.external_id
    document["meta"] = {"resourceType": "Group", "created": group.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "lastModified": group.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "location": location(base, group.id), "version": version_of(group)}
    return document


def render_many(groups, base):
    members = members_of([g.id for g in groups])
    return [render(g, base, members.get(g.id, [])) for g in groups]


def find(caller, group_id):
    if not isinstance(group_id, str) or not group_id.isdigit() or len(group_id) > 10:
        raise not_found("group")
    group = db.session.scalars(select(Group).where(Group.id == int(group_id),
                                                   Group.organization_id == caller.organization_id)).one_or_none()
    if group is None:
        raise not_found("group")
    return group


def base_query(caller):
    return select(Group).where(Group.organization_id == caller.organization_id)


def _member_ids(document, caller):
    members = document.get("members") or []
    if not isinstance(members, list):
        raise invalid_value("members is a list.")
    ids = []
    for member in members:
        value = member.get("value") if isinstance(member, dict) else None
        value = str(value) if value is not None else ""
        if not value.isdigit() or len(value) > 10:
            raise invalid_value(f"A member's value is a user id, not {value!r}.")
        ids.append(int(value))
    ids = sorted(set(ids))
    if ids:
        known = set(db.session.scalars(select(Account.id).where(Account.id.in_(ids), *provisioned(caller))))
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise invalid_value(f"No user of this organization has the id {unknown[0]}.")
    return ids


def _name(document):
    name = document.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise invalid_value("displayName is required.")
    if len(name.strip()) > 255:
        raise invalid_value("displayName is at most 255 characters.")
    return name.strip()


def _taken(caller, name, except_id=None):
    return taken(select(Group.id).where(Group.organization_id == caller.organization_id, Group.name == name),
                 Group.id, except_id)


def uniqueness(name):
    return ScimError(409, f"{name} is the displayName of another group.", "uniqueness")


def create(caller, document):
    name, member_ids = _name(document), _member_ids(document, caller)
    if _taken(caller, name):
        raise uniqueness(name)
    external_id = document.get("externalId") if isinstance(document.get("externalId"), str) else None
    group = Group(name=name, organization_id=caller.organization_id, roles=[], external_id=external_id)
    db.session.add(group)
    db.session.flush()
    _set_members(group, member_ids, [])
    audit.record("create", actor_id=caller.account_id, resource_type="groups", resource_id=group.id,
                 organization_id=caller.organization_id,
                 changes={"via": "scim", "after": {"name": name, "members": member_ids}})
    return group


def _set_members(group, wanted, current):
    added, removed = sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))
    if removed:
        db.session.execute(delete(group_members).where(group_members.c.group_id == group.id,
                                                       group_members.c.account_id.in_(removed)))
    if added:
        now = utcnow()
        db.session.execute(insert(group_members), [{"group_id": group.id, "account_id": a, "created_at": now}
                                                   for a in added])
    return added, removed


def replace(caller, group, document):
    name, member_ids = _name(document), _member_ids(document, caller)
    if name != group.name and _taken(caller, name, group.id):
        raise uniqueness(name)
    current = list(db.session.scalars(select(group_members.c.account_id).where(group_members.c.group_id == group.id)))
    external_id = document.get("externalId") if isinstance(document.get("externalId"), str) else None
    before = {"name": group.name}
    changed = {}
    if name != group.name:
        changed["name"] = group.name = name
    if external_id != group.external_id:
        changed["external_id"] = group.external_id = external_id
    added, removed = _set_members(group, member_ids, current)
    if changed or added or removed:
        group.updated_at = utcnow()  # an UPDATE: the ORM gives the group a new version (its ETag)
        audit.record("update", actor_id=caller.account_id, resource_type="groups", resource_id=group.id,
                     organization_id=caller.organization_id,
                     changes={"via": "scim", "before": before,
                              "after": {**changed, "members_added": added, "members_removed": removed}})
    db.session.flush()
    return group


def delete_group(caller, group):
    audit.record("delete", actor_id=caller.account_id, resource_type="groups", resource_id=group.id,
                 organization_id=caller.organization_id, changes={"via": "scim", "before": {"name": group.name}})
    db.session.delete(group)
    db.session.flush()

