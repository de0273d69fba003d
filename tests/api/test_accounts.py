"""accounts over HTTP (API.md sections 1-4, "### accounts"): CRUD, validation, person/organization
consistency, relationship writes, and the /accounts/me self-service endpoints."""
import pytest

from tests.helpers import API, PASSWORD, ApiClient, assert_jsonapi, error_of

NEW_PASSWORD = "a fresh and long passphrase"


def account_doc(attributes=None, relationships=None, id=None):
    data = {"type": "accounts", "attributes": attributes or {}}
    if relationships is not None:
        data["relationships"] = relationships
    if id is not None:
        data["id"] = str(id)
    return {"data": data}


def person_link(person):
    return {"person": {"data": {"type": "people", "id": str(person.id)}}}


def keys_of(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)


def assert_no_secret(response):
    """No password, hash or token digest anywhere in the document, under any member name."""
    text = response.get_data(as_text=True)
    assert NEW_PASSWORD not in text and "$argon2" not in text
    assert not [k for k in keys_of(response.get_json()) if "password" in k or "digest" in k]


@pytest.fixture
def two_orgs(factory):
    acme, other = factory.organization(), factory.organization()
    return acme, other, factory.person(acme, first_name="Ann"), factory.person(other, first_name="Oto")


# ------------------------------------------------------------------ CRUD

def test_create_with_password(admin, client):
    response = admin.post("/accounts", account_doc({"email": "New@Example.com", "password": NEW_PASSWORD,
                                                    "account_type": "service_account"}))
    body = assert_jsonapi(response, 201)
    data = body["data"]
    assert data["type"] == "accounts" and data["id"].isdigit()
    assert data["attributes"]["email"] == "New@example.com"
    assert data["attributes"]["account_type"] == "service_account"
    assert data["attributes"]["enabled"] is True
    assert response.headers["Location"].endswith(f"{API}/accounts/{data['id']}")
    assert response.headers["ETag"]
    assert_no_secret(response)
    login = client.post("/auth/login", {"email": "new@example.com", "password": NEW_PASSWORD})
    assert assert_jsonapi(login, 200)["meta"]["token"]


def test_password_is_never_rendered(admin, factory):
    account = factory.account(email="someone@example.com", roles=["viewer"])
    for response in (admin.get(f"/accounts/{account.id}", params={"included": "roles"}),
                     admin.get("/accounts", params={"included": "roles,person,organization"}),
                     admin.get("/accounts/me")):
        assert_jsonapi(response, 200)
        assert_no_secret(response)
    response = admin.get(f"/accounts/{account.id}", params={"fields[accounts]": "password"})
    assert response.status_code == 400 or "password" not in response.get_data(as_text=True)


def test_get_one(admin, factory):
    account = factory.account(email="shown@example.com", enabled=False)
    response = admin.get(f"/accounts/{account.id}")
    data = assert_jsonapi(response, 200)["data"]
    assert data["id"] == str(account.id)
    assert data["attributes"]["email"] == "shown@example.com"
    assert data["attributes"]["enabled"] is False
    assert "id" not in data["attributes"] and "type" not in data["attributes"]
    assert data["links"]["self"].endswith(f"/accounts/{account.id}")
    assert response.headers["ETag"]


def test_patch(admin, factory):
    account = factory.account(email="patchme@example.com")
    etag = admin.get(f"/accounts/{account.id}").headers["ETag"]
    response = admin.patch(f"/accounts/{account.id}", account_doc(
        {"enabled": False, "preferences": {"onboarding": {"step": 2}}, "expires_at": "2031-01-01T00:00:00Z"},
        id=account.id))
    attributes = assert_jsonapi(response, 200)["data"]["attributes"]
    assert attributes["enabled"] is False
    assert attributes["preferences"] == {"onboarding": {"step": 2}}
    assert attributes["expires_at"] == "2031-01-01T00:00:00.000000Z"
    assert response.headers["ETag"] != etag
    again = assert_jsonapi(admin.get(f"/accounts/{account.id}"), 200)["data"]["attributes"]
    assert again["enabled"] is False and again["preferences"] == {"onboarding": {"step": 2}}


def test_patch_with_stale_if_match_is_412(admin, factory):
    account = factory.account(email="stale@example.com")
    etag = admin.get(f"/accounts/{account.id}").headers["ETag"]
    assert_jsonapi(admin.patch(f"/accounts/{account.id}", account_doc({"enabled": False}, id=account.id)), 200)
    response = admin.patch(f"/accounts/{account.id}", account_doc({"enabled": True}, id=account.id),
                           headers={"If-Match": etag})
    assert error_of(response, 412)["code"] == "precondition_failed"


def test_delete_removes_account_and_its_roles(admin, factory):
    account = factory.account(email="gone@example.com", roles=["viewer", "editor"])
    role_ids = [r["id"] for r in assert_jsonapi(
        admin.get("/account_roles", params={"filter[account_id]": str(account.id)}), 200)["data"]]
    assert len(role_ids) == 2
    assert admin.delete(f"/accounts/{account.id}").status_code == 204
    assert error_of(admin.get(f"/accounts/{account.id}"), 404)["code"] == "not_found"
    body = assert_jsonapi(admin.get("/account_roles", params={"filter[account_id]": str(account.id)}), 200)
    assert body["data"] == []
    for role_id in role_ids:
        assert error_of(admin.get(f"/account_roles/{role_id}"), 404)["code"] == "not_found"


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("email", ["TAKEN@example.com", "taken@EXAMPLE.COM", "Taken@Example.Com"])
def test_email_taken_case_insensitively_on_create(admin, factory, email):
    factory.account(email="taken@example.com")
    error = error_of(admin.post("/accounts", account_doc({"email": email, "password": NEW_PASSWORD})), 409)
    assert error["code"] == "not_unique"
    assert error["source"]["pointer"] == "/data/attributes/email"


def test_email_taken_case_insensitively_on_patch(admin, factory):
    factory.account(email="taken@example.com")
    other = factory.account(email="other@example.com")
    response = admin.patch(f"/accounts/{other.id}", account_doc({"email": "TAKEN@example.com"}, id=other.id))
    error = error_of(response, 409)
    assert error["code"] == "not_unique"
    assert error["source"]["pointer"] == "/data/attributes/email"


@pytest.mark.parametrize("email", ["not-an-email", "two@@example.com", "", "a@b@c"])
def test_invalid_email_is_422(admin, email):
    error = error_of(admin.post("/accounts", account_doc({"email": email, "password": NEW_PASSWORD})), 422)
    assert error["source"]["pointer"] == "/data/attributes/email"


def test_password_on_patch_is_422(admin, factory):
    account = factory.account(email="pw@example.com")
    response = admin.patch(f"/accounts/{account.id}", account_doc({"password": NEW_PASSWORD}, id=account.id))
    assert error_of(response, 422)["source"]["pointer"] == "/data/attributes/password"
    login = ApiClient(admin.client).post("/auth/login", {"email": "pw@example.com", "password": PASSWORD})
    assert_jsonapi(login, 200)  # the old password still works


@pytest.mark.parametrize("method", ["post", "patch"])
def test_read_only_created_at_is_422(admin, factory, method):
    attributes = {"email": "ro@example.com", "created_at": "2020-01-01T00:00:00Z"}
    if method == "post":
        response = admin.post("/accounts", account_doc(attributes))
    else:
        account = factory.account(email="ro@example.com")
        response = admin.patch(f"/accounts/{account.id}", account_doc(attributes, id=account.id))
    error = error_of(response, 422)
    assert error["code"] == "read_only"
    assert error["source"]["pointer"] == "/data/attributes/created_at"


def test_unknown_attribute_is_422(admin):
    response = admin.post("/accounts", account_doc({"email": "u@example.com", "nickname": "x"}))
    error = error_of(response, 422)
    assert error["code"] == "unknown_field"
    assert error["source"]["pointer"] == "/data/attributes/nickname"


# ------------------------------------------------------------------ person and organization

def test_person_of_another_organization_is_422_on_create(admin, two_orgs):
    _, other, ann, _ = two_orgs
    response = admin.post("/accounts", account_doc({"email": "ann@example.com", "person_id": ann.id,
                                                    "organization_id": other.id}))
    error = error_of(response, 422)
    assert error["source"]["pointer"] in ("/data/attributes/person_id", "/data/attributes/organization_id")
    assert assert_jsonapi(admin.get("/accounts", params={"filter[email]": "ann@example.com"}), 200)["data"] == []


def test_moving_account_away_from_its_persons_organization_is_422(admin, factory, two_orgs):
    acme, other, ann, _ = two_orgs
    account = factory.account(email="ann@example.com", person_id=ann.id, organization_id=acme.id)
    response = admin.patch(f"/accounts/{account.id}", account_doc({"organization_id": other.id}, id=account.id))
    error_of(response, 422)
    assert admin.get(f"/accounts/{account.id}").get_json()["data"]["attributes"]["organization_id"] == acme.id


def test_create_with_only_person_id_inherits_its_organization(admin, two_orgs):
    acme, _, ann, _ = two_orgs
    response = admin.post("/accounts", account_doc({"email": "ann@example.com", "person_id": ann.id}))
    attributes = assert_jsonapi(response, 201)["data"]["attributes"]
    assert attributes["person_id"] == ann.id
    assert attributes["organization_id"] == acme.id


def test_create_with_person_relationship(admin, two_orgs):
    acme, _, ann, _ = two_orgs
    response = admin.post("/accounts", account_doc({"email": "ann@example.com"}, relationships=person_link(ann)))
    data = assert_jsonapi(response, 201)["data"]
    assert data["attributes"]["person_id"] == ann.id
    assert data["attributes"]["organization_id"] == acme.id
    assert data["relationships"]["person"]["data"] == {"type": "people", "id": str(ann.id)}


def test_patch_person_relationship_in_body(admin, factory, two_orgs):
    acme, _, ann, oto = two_orgs
    account = factory.account(email="acc@example.com", organization_id=acme.id)
    response = admin.patch(f"/accounts/{account.id}", account_doc(relationships=person_link(ann), id=account.id))
    assert assert_jsonapi(response, 200)["data"]["attributes"]["person_id"] == ann.id
    response = admin.patch(f"/accounts/{account.id}", account_doc(relationships=person_link(oto), id=account.id))
    error_of(response, 422)


def test_patch_person_relationship_endpoint(admin, factory, two_orgs):
    acme, _, ann, oto = two_orgs
    account = factory.account(email="acc@example.com", organization_id=acme.id)
    url = f"/accounts/{account.id}/relationships/person"
    response = admin.patch(url, {"data": {"type": "people", "id": str(ann.id)}})
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    linkage = assert_jsonapi(admin.get(url), 200)["data"]
    assert linkage == {"type": "people", "id": str(ann.id)}
    assert admin.get(f"/accounts/{account.id}").get_json()["data"]["attributes"]["person_id"] == ann.id

    error_of(admin.patch(url, {"data": {"type": "people", "id": str(oto.id)}}), 422)
    assert assert_jsonapi(admin.get(url), 200)["data"] == {"type": "people", "id": str(ann.id)}

    response = admin.patch(url, {"data": None})
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    assert admin.get(f"/accounts/{account.id}").get_json()["data"]["attributes"]["person_id"] is None


def test_person_linkage_of_account_without_person_is_null(admin, factory):
    account = factory.account(email="nobody@example.com")
    body = assert_jsonapi(admin.get(f"/accounts/{account.id}/relationships/person"), 200)
    assert body["data"] is None
    assert assert_jsonapi(admin.get(f"/accounts/{account.id}/person"), 200)["data"] is None


@pytest.mark.parametrize("method", ["patch", "post", "delete"])
def test_a_relationship_write_that_is_not_supported_is_403_with_or_without_a_body(admin, factory, method):
    """The document lists these routes as "Not supported" (403) and takes no body for them."""
    account = factory.account(email="acc@example.com")
    url = f"{API}/accounts/{account.id}/relationships/sessions"
    for body in (None, {"data": []}):
        response = admin.client.open(url, method=method.upper(), headers=admin.headers(body=body is not None),
                                     data=None if body is None else '{"data": []}')
        error = error_of(response, 403)
        assert error["code"] == "read_only" and "accounts.sessions cannot be changed" in error["detail"]
    error_of(admin.client.open(f"{API}/accounts/999999/relationships/sessions", method=method.upper(),
                               headers=admin.headers()), 404)


# ------------------------------------------------------------------ /accounts/me

@pytest.fixture
def person_user(app, factory):
    """A plain account with a person (names to self-manage)."""
    org = factory.organization()
    person = factory.person(org, first_name="Old", last_name="Name")
    account = factory.account(email="me@example.com", person_id=person.id, organization_id=org.id)
    api = ApiClient(app.test_client(), factory.token(account))
    api.account, api.person = account, person
    return api


def me_patch(attributes):
    return {"data": {"type": "accounts", "attributes": attributes}}


def test_me_get_with_included_and_fields(user, factory):
    role = factory.role(user.account, "viewer")
    body = assert_jsonapi(user.get("/accounts/me", params={"included": "roles", "fields[accounts]": "email"}), 200)
    assert body["data"]["id"] == str(user.account.id)
    assert body["data"]["attributes"] == {"email": "plain@example.com"}
    assert [(i["type"], i["id"]) for i in body["included"]] == [("account_roles", str(role.id))]
    assert body["included"][0]["attributes"]["name"] == "viewer"


def test_plain_user_sees_only_itself_and_cannot_create(user, factory):
    factory.account(email="someone-else@example.com")
    body = assert_jsonapi(user.get("/accounts", {"count": "true"}), 200)
    assert [a["id"] for a in body["data"]] == [str(user.account.id)] and body["meta"]["count"] == 1
    create = {"data": {"type": "accounts", "attributes": {"email": "new@example.com"}}}
    assert error_of(user.post("/accounts", create), 403)["code"] == "forbidden"


def test_me_patch_preferences(user):
    prefs = {"onboarding": {"done": ["welcome"], "step": 3}}
    body = assert_jsonapi(user.patch("/accounts/me", me_patch({"preferences": prefs})), 200)
    assert body["data"]["attributes"]["preferences"] == prefs
    assert assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]["preferences"] == prefs


def test_me_patch_consent_given_sets_timestamp(user):
    assert assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]["consent_given_at"] is None
    body = assert_jsonapi(user.patch("/accounts/me", me_patch({"consent_given": True})), 200)
    given_at = body["data"]["attributes"]["consent_given_at"]
    assert given_at and given_at.endswith("Z")
    assert assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]["consent_given_at"] == given_at


def test_me_patch_names_are_written_to_the_person(person_user, admin):
    response = person_user.patch("/accounts/me", me_patch({"first_name": "New", "last_name": "Surname"}))
    assert_jsonapi(response, 200)
    person = assert_jsonapi(admin.get(f"/people/{person_user.person.id}"), 200)["data"]["attributes"]
    assert (person["first_name"], person["last_name"]) == ("New", "Surname")
    body = assert_jsonapi(person_user.get("/accounts/me", params={"included": "person"}), 200)
    assert body["included"][0]["attributes"]["first_name"] == "New"


def test_me_patch_email_with_current_password_waits_for_confirmation(user, client):
    """The new address confirms the change first (tests/security/test_email_change.py)."""
    body = assert_jsonapi(user.patch("/accounts/me", me_patch(
        {"email": "renamed@example.com", "current_password": PASSWORD})), 200)
    assert body["data"]["attributes"]["email"] == "plain@example.com"
    assert body["meta"]["email_change"]["email"] == "renamed@example.com"
    assert_jsonapi(client.post("/auth/login", {"email": "plain@example.com", "password": PASSWORD}), 200)


@pytest.mark.parametrize("attributes", [
    {"email": "renamed@example.com", "current_password": "wrong password!"},
    {"email": "renamed@example.com"},
], ids=["wrong", "missing"])
def test_me_patch_email_needs_the_right_current_password(user, attributes):
    error = error_of(user.patch("/accounts/me", me_patch(attributes)), 422)
    assert error["source"]["pointer"] == "/data/attributes/current_password"
    assert assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]["email"] == "plain@example.com"


def test_me_patch_email_taken_answers_as_a_free_one(user, factory):
    """No 409: self-service is no oracle for which addresses have an account."""
    factory.account(email="taken@example.com")
    response = user.patch("/accounts/me", me_patch({"email": "TAKEN@example.com", "current_password": PASSWORD}))
    assert assert_jsonapi(response, 200)["meta"]["email_change"]["status"] == "pending"


@pytest.mark.parametrize("name, value", [
    ("enabled", False), ("organization_id", 1), ("expires_at", "2030-01-01T00:00:00Z"),
    ("account_type", "local_account"),
])
def test_me_patch_forbidden_fields_are_403(user, name, value):
    response = user.patch("/accounts/me", me_patch({"preferences": {"a": 1}, name: value}))
    error = error_of(response, 403)
    assert error["source"]["pointer"] == f"/data/attributes/{name}"
    attributes = assert_jsonapi(user.get("/accounts/me"), 200)["data"]["attributes"]
    assert attributes["preferences"] == {} and attributes["enabled"] is True and attributes["expires_at"] is None


def test_me_patch_roles_relationship_is_403(user):
    body = {"data": {"type": "accounts", "attributes": {},
                     "relationships": {"roles": {"data": [{"type": "account_roles", "id": "1"}]}}}}
    error_of(user.patch("/accounts/me", body), 403)


def test_timestamps_out_of_range_in_utc_are_a_422_and_early_years_render_with_four_digits(admin, factory):
    """Found by schemathesis: 0001-01-01T00:00:00+05:00 is before year 1 in UTC (was a 500),
    and a year before 1000 rendered as "156-06-30T..." (not a valid date-time)."""
    account = factory.account()
    too_early = admin.patch(f"/accounts/{account.id}", {"data": {
        "type": "accounts", "id": str(account.id), "attributes": {"expires_at": "0001-01-01T00:00:00+05:00"}}})
    assert error_of(too_early, 422)["source"]["pointer"] == "/data/attributes/expires_at"
    early = admin.patch(f"/accounts/{account.id}", {"data": {
        "type": "accounts", "id": str(account.id), "attributes": {"expires_at": "0156-06-30T12:00:00Z"}}})
    assert assert_jsonapi(early, 200)["data"]["attributes"]["expires_at"] == "0156-06-30T12:00:00.000000Z"
