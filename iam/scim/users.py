"""SCIM Users: the organization's accounts with their people, another view of the same rows as
the JSON:API's accounts and people (contract section 11).

- `id` the account id; `userName` the account's email (normalised as the JSON:API normalises it,
  unique across the server: 409 `uniqueness`); a userName that is no email address (a login
  name) is kept as it is, and the account's email is then the primary email of `emails`;
  `emails` the account's email (`work`, primary)
  and the person's secondary email (`other`); `name.givenName` / `middleName` / `familyName`
  and `displayName` the person's; `active` the account's `enabled` (false ends its sessions);
  `externalId` the account's; the enterprise extension's `employeeNumber` and `department` the
  person's, `manager.value` another account of the organization; `groups` (read only).
- Service accounts are not users here: an identity provider provisions people (and must never
  deactivate the SCIM key's own account).
- A user is created with a person of the organization. It signs in through the organization's
  identity provider when the organization has an enabled one (`auth_type: sso`), else with a
  password it sets through the reset flow (none is set here).
- The ETag is `W/"<account version>.<person version>"`: any change of either changes it.
Every write is audited (`create`, `update`, `delete` of `accounts`, with `via: scim`).
"""
from sqlalchemy import func, select

from .. import audit
from ..auth import sessions
from ..extensions import db
from ..models import Account, Group, IdentityProvider, Person, group_members, utcnow
from ..resources.accounts import normalise_email
from . import schemas
from .errors import ScimError, invalid_value, not_found
from .protocol import coerce_boolean, etag, taken

MULTI_VALUED = frozenset({"emails", "groups"})


def location(base, account_id):
    return f"{base}/Users/{account_id}"


def version_of(account, person):
    return etag(f"{account.version}.{person.version if person is not None else 0}")


def render(account, person, base, groups=None, manager=None):
    names = {"givenName": person.first_name, "middleName": person.middle_name, "familyName": person.last_name} \
        if person is not None else {}
    names = {k: v for k, v in names.items() if v}
    emails = [{"value": account.email, "type": "work", "primary": True}]
    if person is not None and person.secondary_email:
        emails.append({"value": person.secondary_email, "type": "other", "primary": False})
    document = {"schemas": [schemas.USER], "id": str(account.id), "userName": account.user_name or account.email,
                "active": bool(account.enabled), "emails": emails}
    if account.external_id:
        document["externalId"] = account.external_id
    if names:
        document["name"] = names
    if person is not None and person.display_name:
        document["displayName"] = person.display_name
    enterprise = {}
    if person is not None and person.employee_number:
        enterprise["employeeNumber"] = person.employee_number
    if person is not None and person.department:
        enterprise["department"] = person.department
    if account.manager_id is not None:
        enterprise["manager"] = {"value": str(account.manager_id), "$ref": location(base, account.manager_id)}
        if manager is not None:
            enterprise["manager"]["displayName"] = manager
    if enterprise:
        document["schemas"].append(schemas.ENTERPRISE)
        document[schemas.ENTERPRISE] = enterprise
    if groups:
        document["groups"] = [{"value": str(gid), "display": name, "$ref": f"{base}/Groups/{gid}"}
                              for gid, name in groups]
    document["meta"] = {"resourceType": "User", "created": _time(account.created_at),
                        "lastModified": _time(max(account.updated_at, person.updated_at) if person else account.updated_at),
                        "location": location(base, account.id), "version": version_of(account, person)}
    return document


REQUEST_ONLY = ("type", "primary")  # emails' sub-attributes returned only when asked for ("returned": "request")


def returned(document, wanted):
    """The document as answered: emails' type and primary only when `wanted` names them."""
    asked = {name.lower() for name in wanted or []}
    keep = {sub for sub in REQUEST_ONLY if f"emails.{sub}" in asked}
    if "emails" not in document or len(keep) == len(REQUEST_ONLY):
        return document
    emails = [{k: v for k, v in item.items() if k not in REQUEST_ONLY or k in keep} for item in document["emails"]]
    return {**document, "emails": emails}


def _time(value):
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def groups_of(account_ids):
    """account id -> [(group id, name)], in one statement."""
    found = {}
    if not account_ids:
        return found
    for account_id, group_id, name in db.session.execute(
            select(group_members.c.account_id, Group.id, Group.name).join(Group, Group.id == group_members.c.group_id)
            .where(group_members.c.account_id.in_(account_ids)).order_by(Group.id)):
        found.setdefault(account_id, []).append((group_id, name))
    return found


def managers_of(manager_ids):
    if not manager_ids:
        return {}
    rows = db.session.execute(select(Account.id, Person.display_name, Person.first_name, Person.last_name)
                              .outerjoin(Person, Person.id == Account.person_id).where(Account.id.in_(manager_ids)))
    return {row[0]: row[1] or " ".join(p for p in (row[2], row[3]) if p) or None for row in rows}


def render_many(rows, base):
    account_ids = [account.id for account, _ in rows]
    groups = groups_of(account_ids)
    managers = managers_of({account.manager_id for account, _ in rows if account.manager_id is not None})
    return [render(account, person, base, groups.get(account.id), managers.get(account.manager_id))
            for account, person in rows]


def provisioned(caller):
    """The accounts SCIM sees: the organization's, but its service accounts (an identity provider
    provisions people; the SCIM key's own account is one of those it must never deactivate)."""
    return (Account.organization_id == caller.organization_id, Account.account_type != "service_account")


def find(caller, user_id):
    """(account, person) of this organization, else a 404."""
    if not isinstance(user_id, str) or not user_id.isdigit() or len(user_id) > 10:
        raise not_found("user")
    row = db.session.execute(select(Account, Person).outerjoin(Person, Person.id == Account.person_id)
                             .where(Account.id == int(user_id), *provisioned(caller))).first()
    if row is None:
        raise not_found("user")
    return row[0], row[1]


def base_query(caller):
    return (select(Account, Person).outerjoin(Person, Person.id == Account.person_id)
            .where(*provisioned(caller)))


def _text(value, name, limit=255):
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_value(f"{name} is a string.")
    value = value.strip()
    if len(value) > limit:
        raise invalid_value(f"{name} is at most {limit} characters.")
    return value or None


def values_from(document, caller, account=None):
    """What a User document says, checked: (account values, person values)."""
    user_name = document.get("userName")
    if not isinstance(user_name, str) or not user_name.strip():
        raise ScimError(400, "userName is required.", "invalidValue")
    user_name = user_name.strip()
    if len(user_name) > 320:
        raise invalid_value("userName is at most 320 characters.")
    emails = document.get("emails") or []
    if not isinstance(emails, list) or not all(isinstance(e, dict) for e in emails):
        raise invalid_value("emails is a list of objects.")
    try:
        email, stored_user_name = _email(user_name), None
    except ValueError:  # a login name that is not an address: the email comes from emails
        given = _primary_email(emails)
        if given is None:
            raise invalid_value("userName is not an email address: send the user's email in emails.") from None
        try:
            email, stored_user_name = _email(given), user_name
        except ValueError:
            raise invalid_value(f"Not an email address: {given!r}.") from None
    active = coerce_boolean(document.get("active", True))
    if not isinstance(active, bool):
        raise invalid_value("active is a boolean.")
    name = document.get("name") or {}
    if not isinstance(name, dict):
        raise invalid_value("name is an object.")
    secondary = None
    for item in emails:
        value = item.get("value")
        if isinstance(value, str) and value.strip() and value.strip().lower() != email.lower():
            try:
                secondary = _email(value.strip())
            except ValueError:
                raise invalid_value(f"Not an email address: {value!r}.") from None
            break
    enterprise = document.get(schemas.ENTERPRISE) or {}
    if not isinstance(enterprise, dict):
        raise invalid_value("The enterprise extension is an object.")
    manager_id = None
    manager = enterprise.get("manager")
    if isinstance(manager, str):
        manager = {"value": manager}
    if isinstance(manager, dict) and manager.get("value") not in (None, ""):
        value = str(manager["value"])
        manager_id = int(value) if value.isdigit() and len(value) <= 10 else None
        if manager_id is None or db.session.scalar(select(Account.id).where(
                Account.id == manager_id, *provisioned(caller))) is None:
            raise invalid_value("manager.value is the id of another user of this organization.")
        if account is not None and manager_id == account.id:
            raise invalid_value("A user is not its own manager.")
    elif manager not in (None, {}) and not isinstance(manager, dict):
        raise invalid_value("manager is an object with a value.")
    account_values = {"email": email, "user_name": stored_user_name, "enabled": active, "external_id": _text(document.get("externalId"), "externalId"),
                      "manager_id": manager_id}
    person_values = {"first_name": _text(name.get("givenName"), "name.givenName"),
                     "middle_name": _text(name.get("middleName"), "name.middleName"),
                     "last_name": _text(name.get("familyName"), "name.familyName"),
                     "display_name": _text(document.get("displayName"), "displayName"),
                     "secondary_email": secondary,
                     "employee_number": _text(enterprise.get("employeeNumber"), "employeeNumber", 64),
                     "department": _text(enterprise.get("department"), "department")}
    return account_values, person_values


def _email(text):
    """The normal form of an email address (as the JSON:API stores it), or ValueError."""
    try:
        return normalise_email(text)
    except Exception:  # noqa: BLE001 - marshmallow's ValidationError
        raise ValueError(text) from None


def _primary_email(emails):
    ordered = sorted(emails, key=lambda e: (e.get("primary") is not True, e.get("type") != "work"))
    for item in ordered:
        if isinstance(item.get("value"), str) and item["value"].strip():
            return item["value"].strip()
    return None


def _user_name_taken(name, except_id=None):
    return taken(select(Account.id).where(func.lower(func.coalesce(Account.user_name, Account.email)) == name.lower()),
                 Account.id, except_id)


def _email_taken(email, except_id=None):
    return taken(select(Account.id).where(func.lower(Account.email) == email.lower()), Account.id, except_id)


def uniqueness(name):
    return ScimError(409, f"{name} is the userName or email of another user.", "uniqueness")


def create(caller, document):
    account_values, person_values = values_from(document, caller)
    if _email_taken(account_values["email"]):
        raise uniqueness(account_values["email"])
    if account_values["user_name"] and _user_name_taken(account_values["user_name"]):
        raise uniqueness(account_values["user_name"])
    sso = db.session.scalar(select(IdentityProvider.id).where(
        IdentityProvider.organization_id == caller.organization_id, IdentityProvider.enabled.is_(True)).limit(1))
    person = Person(organization_id=caller.organization_id, facets=[], **person_values)
    account = Account(organization_id=caller.organization_id, person=person, account_type="personal_account",
                      auth_type="sso" if sso is not None else "password", password_hash=None, preferences={},
                      **account_values)
    db.session.add(account)
    db.session.flush()
    audit.record("create", actor_id=caller.account_id, resource_type="accounts", resource_id=account.id,
                 organization_id=caller.organization_id, changes={"via": "scim", "after": _audited(account_values,
                                                                                                   person_values)})
    return account, person


def _audited(account_values, person_values):
    return {**{k: v for k, v in account_values.items()}, **{k: v for k, v in person_values.items() if v is not None}}


def replace(caller, account, person, document):
    account_values, person_values = values_from(document, caller, account)
    if account_values["email"].lower() != account.email.lower() and _email_taken(account_values["email"], account.id):
        raise uniqueness(account_values["email"])
    if account_values["user_name"] and _user_name_taken(account_values["user_name"], account.id):
        raise uniqueness(account_values["user_name"])
    before = {"email": account.email, "enabled": account.enabled}
    now = utcnow()
    changed = {k: v for k, v in account_values.items() if getattr(account, k) != v}
    for name, value in changed.items():
        setattr(account, name, value)
    if person is None:
        person = Person(organization_id=caller.organization_id, facets=[])
        db.session.add(person)
        account.person = person
    person_changed = {k: v for k, v in person_values.items() if getattr(person, k) != v}
    for name, value in person_changed.items():
        setattr(person, name, value)
    if "enabled" in changed and not account.enabled:
        sessions.end_all(account.id, now)  # deactivated: every session ends now
    if changed or person_changed:
        if not changed:
            account.updated_at = now  # the user's lastModified moves with its person
        audit.record("update", actor_id=caller.account_id, resource_type="accounts", resource_id=account.id,
                     organization_id=caller.organization_id,
                     changes={"via": "scim", "before": before, "after": {**changed, **person_changed}})
    db.session.flush()
    return account, person


def delete(caller, account, person):
    audit.record("delete", actor_id=caller.account_id, resource_type="accounts", resource_id=account.id,
                 organization_id=caller.organization_id, changes={"via": "scim", "before": {"email": account.email}})
    db.session.delete(account)
    db.session.flush()
    if person is not None:
        db.session.delete(person)

