"""SCIM provisioning as identity providers do it: Okta's and Entra's request shapes for create,
deactivate, reactivate, rename and group membership; tenancy (another organization's key never
sees or changes these users: 404), uniqueness (409 uniqueness), ETags, paging through every
user, the audit trail of SCIM writes, and the key's reach (/scim/v2 only)."""
from sqlalchemy import select

from iam.extensions import db
from iam.models import Account, AccountSession, AuditEvent, Group, Person
from tests.helpers import API, JSONAPI
from tests.scim.conftest import body, scim_error

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def okta_user(email="ada@acme.example", given="Ada", family="Lovelace"):
    """What Okta POSTs to /Users."""
    return {"schemas": [USER], "userName": email, "name": {"givenName": given, "familyName": family},
            "emails": [{"primary": True, "value": email, "type": "work"}], "displayName": f"{given} {family}",
            "locale": "en-US", "externalId": "00u1abcd", "groups": [], "password": "ignored-Secret-1",
            "active": True}


def entra_user(email="grace@acme.example"):
    """What Microsoft Entra ID POSTs to /Users."""
    return {"schemas": [USER, ENTERPRISE], "externalId": "grace", "userName": email, "active": True,
            "displayName": "Grace Hopper", "emails": [{"primary": True, "type": "work", "value": email}],
            "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
            ENTERPRISE: {"employeeNumber": "1906", "department": "Navy"}}


def test_okta_creates_reads_deactivates_and_reactivates_a_user(app, scim, org):
    created = body(scim.post("/Users", okta_user()), 201)
    assert created["userName"] == "ada@acme.example" and created["active"] is True
    assert created["name"]["givenName"] == "Ada" and created["externalId"] == "00u1abcd"
    assert created["meta"]["resourceType"] == "User" and created["meta"]["location"].endswith(f"/Users/{created['id']}")
    user_id = created["id"]
    # Okta looks the user up by userName before creating it
    found = body(scim.get("/Users", {"filter": 'userName eq "ADA@acme.example"', "startIndex": 1, "count": 100}), 200)
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == user_id
    with app.app_context():
        account = db.session.get(Account, int(user_id))
        assert account.organization_id == org.id and account.person.first_name == "Ada"
    # Okta deactivates with a PATCH replacing active, the value a string "False" in older versions
    patched = body(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"active": "False"}}]}), 200)
    assert patched["active"] is False
    with app.app_context():
        assert db.session.get(Account, int(user_id)).enabled is False
    reactivated = body(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"active": True}}]}), 200)
    assert reactivated["active"] is True


def test_deactivating_ends_the_users_sessions(app, scim, org):
    user_id = body(scim.post("/Users", okta_user()), 201)["id"]
    with app.app_context():
        from datetime import timedelta

        from iam.models import utcnow
        now = utcnow()
        session = AccountSession(account_id=int(user_id), expires_at=now + timedelta(hours=1), last_used_at=now,
                                 amr=["sso"], auth_time=now, created_at=now)
        db.session.add(session)
        db.session.commit()
        session_id = session.id
    body(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": False}]}), 200)
    with app.app_context():
        assert db.session.get(AccountSession, session_id).revoked_at is not None


def test_entra_creates_renames_and_updates_with_its_patch_shapes(app, scim, org):
    created = body(scim.post("/Users", entra_user()), 201)
    assert created[ENTERPRISE] == {"employeeNumber": "1906", "department": "Navy"}
    user_id = created["id"]
    # Entra: op names capitalised, paths with value filters, enterprise attributes by URN
    patched = body(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "userName", "value": "grace.hopper@acme.example"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "grace.hopper@acme.example"},
        {"op": "Replace", "path": "name.familyName", "value": "Murray Hopper"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Computing"},
        {"op": "Replace", "path": "displayName", "value": "Grace Murray Hopper"}]}), 200)
    assert patched["userName"] == "grace.hopper@acme.example" and patched["name"]["familyName"] == "Murray Hopper"
    assert patched[ENTERPRISE]["department"] == "Computing" and patched["displayName"] == "Grace Murray Hopper"
    # A no-path replace with dotted keys, as Okta and Entra both send
    patched = body(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"name.givenName": "Amazing Grace", f"{ENTERPRISE}:employeeNumber": "42"}}]}), 200)
    assert patched["name"]["givenName"] == "Amazing Grace" and patched[ENTERPRISE]["employeeNumber"] == "42"
    with app.app_context():
        person = db.session.scalars(select(Person).join(Account, Account.person_id == Person.id)
                                    .where(Account.id == int(user_id))).one()
        assert (person.first_name, person.employee_number, person.department) == ("Amazing Grace", "42", "Computing")


def test_a_manager_is_another_user_of_the_organization(scim, other_scim):
    boss = body(scim.post("/Users", okta_user("boss@acme.example", "Big", "Boss")), 201)["id"]
    outsider = body(other_scim.post("/Users", okta_user("out@globex.example")), 201)["id"]
    user = entra_user()
    user[ENTERPRISE]["manager"] = {"value": boss}
    created = body(scim.post("/Users", user), 201)
    assert created[ENTERPRISE]["manager"]["value"] == boss
    user = entra_user("someone@acme.example")
    user[ENTERPRISE]["manager"] = {"value": outsider}
    scim_error(scim.post("/Users", user), 400, "invalidValue")


def test_groups_and_membership_changes_as_okta_and_entra_send_them(app, scim, org):
    ada = body(scim.post("/Users", okta_user()), 201)["id"]
    grace = body(scim.post("/Users", entra_user()), 201)["id"]
    group = body(scim.post("/Groups", {"schemas": [GROUP], "displayName": "Engineering", "members": [
        {"value": ada}]}), 201)
    assert [m["value"] for m in group["members"]] == [ada]
    group_id = group["id"]
    # Okta: add members with a path and a list
    body(scim.patch(f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": grace, "display": "grace@acme.example"}]}]}), 200)
    # Entra: remove a member by value filter
    patched = body(scim.patch(f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "Remove", "path": f'members[value eq "{ada}"]'}]}), 200)
    assert [m["value"] for m in patched["members"]] == [grace]
    # Okta: remove with a value list; then rename
    patched = body(scim.patch(f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": "members", "value": [{"value": grace}]},
        {"op": "replace", "value": {"id": group_id, "displayName": "Platform"}}]}), 200)
    assert patched["members"] == [] and patched["displayName"] == "Platform"
    with app.app_context():
        assert db.session.get(Group, int(group_id)).name == "Platform"
    # A user's groups are read only and listed on the user
    body(scim.patch(f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": ada}]}]}), 200)
    assert body(scim.get(f"/Users/{ada}"), 200)["groups"][0]["display"] == "Platform"
    # Members are users of this organization only
    scim_error(scim.patch(f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": "999999"}]}]}), 400, "invalidValue")


def test_another_organizations_key_never_sees_or_changes_these_users(scim, other_scim):
    user_id = body(scim.post("/Users", okta_user()), 201)["id"]
    group_id = body(scim.post("/Groups", {"schemas": [GROUP], "displayName": "Eng"}), 201)["id"]
    for path in (f"/Users/{user_id}", f"/Groups/{group_id}"):
        scim_error(other_scim.get(path), 404)
        scim_error(other_scim.put(path, okta_user("x@globex.example") if "Users" in path
                                  else {"schemas": [GROUP], "displayName": "X"}), 404)
        scim_error(other_scim.patch(path, {"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "displayName", "value": "X"}]}), 404)
        scim_error(other_scim.delete(path), 404)
    assert body(other_scim.get("/Users", {"filter": 'userName eq "ada@acme.example"'}), 200)["totalResults"] == 0
    assert body(other_scim.get("/Groups"), 200)["totalResults"] == 0
    assert body(scim.get(f"/Users/{user_id}"), 200)["userName"] == "ada@acme.example"


def test_uniqueness(scim, other_scim, factory):
    body(scim.post("/Users", okta_user()), 201)
    scim_error(scim.post("/Users", okta_user("ADA@acme.example")), 409, "uniqueness")
    # emails are unique across the server, whoever made the account
    factory.account(email="taken@elsewhere.example")
    scim_error(other_scim.post("/Users", okta_user("taken@elsewhere.example")), 409, "uniqueness")
    body(scim.post("/Groups", {"schemas": [GROUP], "displayName": "Eng"}), 201)
    scim_error(scim.post("/Groups", {"schemas": [GROUP], "displayName": "Eng"}), 409, "uniqueness")
    body(other_scim.post("/Groups", {"schemas": [GROUP], "displayName": "Eng"}), 201)  # another organization's


def test_etags_guard_replacements(scim):
    created = scim.post("/Users", okta_user())
    user = body(created, 201)
    tag = created.headers["ETag"]
    assert tag == user["meta"]["version"] and tag.startswith('W/"')
    stale = scim.put(f"/Users/{user['id']}", {**okta_user(), "displayName": "A"}, headers={"If-Match": tag})
    assert body(stale, 200)["displayName"] == "A" and stale.headers["ETag"] != tag
    scim_error(scim.put(f"/Users/{user['id']}", {**okta_user(), "displayName": "B"}, headers={"If-Match": tag}), 412)
    scim_error(scim.delete(f"/Users/{user['id']}", headers={"If-Match": tag}), 412)
    assert scim.delete(f"/Users/{user['id']}", headers={"If-Match": stale.headers["ETag"]}).status_code == 204
    scim_error(scim.get(f"/Users/{user['id']}"), 404)


def test_paging_through_every_user_has_no_duplicate_and_none_missing(scim):
    made = {body(scim.post("/Users", okta_user(f"user{n:02d}@acme.example", f"U{n}", "X")), 201)["id"]
            for n in range(23)}
    seen, start = [], 1
    while True:
        page = body(scim.get("/Users", {"startIndex": start, "count": 5, "sortBy": "userName"}), 200)
        assert page["totalResults"] == 23 and page["startIndex"] == start
        seen += [r["id"] for r in page["Resources"]]
        if not page["Resources"]:
            break
        start += page["itemsPerPage"]
    assert len(seen) == len(set(seen)) == 23 and set(seen) == made
    names = [r["userName"] for r in body(scim.get("/Users", {"count": 100, "sortBy": "userName",
                                                             "sortOrder": "descending"}), 200)["Resources"]]
    assert names == sorted(names, reverse=True)
    assert body(scim.get("/Users", {"count": 0}), 200) == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 23, "startIndex": 1,
        "itemsPerPage": 0, "Resources": []}


def test_search_by_post_and_projection(scim):
    body(scim.post("/Users", okta_user()), 201)
    found = body(scim.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                              "filter": 'name.givenName sw "ad"', "attributes": ["userName"]}), 200)
    assert found["totalResults"] == 1
    resource = found["Resources"][0]
    assert set(resource) == {"schemas", "id", "meta", "userName"}
    excluded = body(scim.get("/Users", {"excludedAttributes": "emails,name"}), 200)["Resources"][0]
    assert "emails" not in excluded and "name" not in excluded and excluded["userName"] == "ada@acme.example"


def test_bad_requests_are_scim_errors(scim):
    scim_error(scim.get("/Users", {"filter": 'userName eq'}), 400, "invalidFilter")
    scim_error(scim.get("/Users", {"filter": 'nosuchattribute eq "x"'}), 400, "invalidFilter")
    # a Group attribute is no User's, even under its own schema's name
    scim_error(scim.get("/Users", {"filter": f'{GROUP}:displayName eq "x"'}), 400, "invalidFilter")
    scim_error(scim.get("/Groups", {"filter": f'{USER}:userName eq "x"'}), 400, "invalidFilter")
    scim_error(scim.get("/Users", {"sortBy": "emails"}), 400, "invalidValue")
    scim_error(scim.post("/Users", {"schemas": [USER]}), 400, "invalidValue")
    scim_error(scim.post("/Users", okta_user("not an email")), 400, "invalidValue")
    scim_error(scim.patch("/Users/1", {"Operations": "x"}), 404)
    user_id = body(scim.post("/Users", okta_user()), 201)["id"]
    scim_error(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [{"op": "move"}]}), 400,
               "invalidSyntax")
    scim_error(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [{"op": "remove"}]}), 400,
               "noTarget")
    scim_error(scim.get("/Users/abc"), 404)
    scim_error(scim.get("/Users", {"startIndex": "x"}), 400, "invalidValue")
    # far past the end: an empty page (the fuzzer found a 500 there: SQLite's OFFSET overflowed)
    far = body(scim.get("/Users", {"startIndex": "99999999999999999999"}), 200)
    assert far["Resources"] == [] and far["totalResults"] == 1


def test_a_scim_key_works_at_scim_only_and_nothing_else_does(app, admin, scim, user):
    # The key is no API key: the API's key login refuses it
    refused = app.test_client().post(f"{API}/auth/api/login", json={"key": scim.key},
                                     headers={"Accept": JSONAPI})
    assert refused.status_code == 401
    # ...and the API's own tokens or other keys are no SCIM credentials
    for header in ({"Authorization": f"Bearer {admin.token}"}, {}, {"Authorization": "Basic eDp5"}):
        answer = app.test_client().get("/scim/v2/Users", headers=header)
        assert answer.status_code == 401 and answer.get_json()["status"] == "401"


def test_scim_writes_are_audited(app, scim, org):
    user_id = body(scim.post("/Users", okta_user()), 201)["id"]
    body(scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}), 200)
    group_id = body(scim.post("/Groups", {"schemas": [GROUP], "displayName": "Eng", "members": [
        {"value": user_id}]}), 201)["id"]
    assert scim.delete(f"/Groups/{group_id}").status_code == 204
    assert scim.delete(f"/Users/{user_id}").status_code == 204
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.resource_type.in_(("accounts", "groups")))
                                    .order_by(AuditEvent.id)).all()
        trail = [(e.action, e.resource_type, e.resource_id) for e in events if e.changes.get("via") == "scim"]
        assert trail == [("create", "accounts", user_id), ("update", "accounts", user_id),
                         ("create", "groups", group_id), ("delete", "groups", group_id),
                         ("delete", "accounts", user_id)]
        assert all(e.organization_id == org.id for e in events if e.changes.get("via") == "scim")
