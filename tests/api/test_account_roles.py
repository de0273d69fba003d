"""account_roles over HTTP: CRUD, scopes, validity window, the Pulse filters, includes, aliases (API.md section 4).

The admin fixture's own role (`admin`, scopes `{}`) is always there; filters that match it expect it.
"""
from datetime import UTC, datetime

import pytest

from tests.helpers import API, assert_jsonapi, error_of, ids


def role_doc(id_=None, type_="account_roles", **attributes):
    data = {"type": type_, "attributes": attributes}
    if id_ is not None:
        data["id"] = str(id_)
    return {"data": data}


@pytest.fixture
def account(factory):
    return factory.account(email="holder@example.com")


# ------------------------------------------------------------------ CRUD

@pytest.fixture
def units(factory):
    """Two units of one organization (an ou scope names units that exist)."""
    organization = factory.organization()
    return organization, [factory.unit(organization, name=f"unit-{n}").id for n in range(2)]


def test_create_returns_201_location_and_attributes(admin, account, units):
    organization, unit_ids = units
    attributes = {"name": "ou_manager", "account_id": account.id, "scopes": {"ou": unit_ids},
                  "info": {"granted_by": "ops", "ticket": 42},
                  "not_before": "2030-01-01T00:00:00Z", "expires_at": "2031-06-30T12:30:00.250000Z"}
    response = admin.post("/account_roles", role_doc(**attributes))
    data = assert_jsonapi(response, 201)["data"]
    assert data["type"] == "account_roles"
    assert response.headers["Location"].endswith(f"{API}/account_roles/{data['id']}")
    assert data["attributes"] == {
        **attributes,
        "not_before": "2030-01-01T00:00:00.000000Z",
        "expires_at": "2031-06-30T12:30:00.250000Z",
        "scope_organization_id": organization.id,  # where the scope was granted, and stays
        "created_at": data["attributes"]["created_at"],
        "updated_at": data["attributes"]["updated_at"],
    }
    assert data["relationships"]["account"]["data"] == {"type": "accounts", "id": str(account.id)}
    shown = assert_jsonapi(admin.get(f"/account_roles/{data['id']}"), 200)["data"]
    assert shown["attributes"] == data["attributes"]


def test_defaults_are_global_scopes_and_empty_info(admin, account):
    data = assert_jsonapi(admin.post("/account_roles", role_doc(name="viewer", account_id=account.id)), 201)["data"]
    attributes = data["attributes"]
    assert (attributes["scopes"], attributes["info"]) == ({}, {})
    assert (attributes["not_before"], attributes["expires_at"]) == (None, None)


def test_update_changes_attributes(admin, factory, account):
    role = factory.role(account, "viewer")
    body = role_doc(role.id, name="editor", info={"note": "x"}, expires_at="2040-01-01T00:00:00Z")
    data = assert_jsonapi(admin.patch(f"/account_roles/{role.id}", body), 200)["data"]
    assert data["attributes"]["name"] == "editor"
    assert data["attributes"]["info"] == {"note": "x"}
    assert data["attributes"]["expires_at"] == "2040-01-01T00:00:00.000000Z"
    shown = assert_jsonapi(admin.get(f"/account_roles/{role.id}"), 200)["data"]
    assert shown["attributes"]["name"] == "editor"


def test_a_timestamp_before_the_year_1000_is_rendered_with_four_digits(admin, factory, account):
    """strftime's %Y rendered the year 156 as "156", which is no RFC 3339 date-time."""
    role = factory.role(account, "viewer")
    body = role_doc(role.id, not_before="0156-06-30T18:43:17.1373Z")
    data = assert_jsonapi(admin.patch(f"/account_roles/{role.id}", body), 200)["data"]
    assert data["attributes"]["not_before"] == "0156-06-30T18:43:17.137300Z"
    listed = assert_jsonapi(admin.get("/account_roles", {"filter[id]": role.id}), 200)["data"]
    assert listed[0]["attributes"]["not_before"] == "0156-06-30T18:43:17.137300Z"


def test_delete_is_204_then_404(admin, factory, account):
    role = factory.role(account, "viewer")
    response = admin.delete(f"/account_roles/{role.id}")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert error_of(admin.get(f"/account_roles/{role.id}"), 404)["code"] == "not_found"


def test_unknown_account_is_422(admin):
    error = error_of(admin.post("/account_roles", role_doc(name="viewer", account_id=999999)), 422)
    assert error["source"]["pointer"] == "/data/attributes/account_id"


# ------------------------------------------------------------------ scopes and validity window

@pytest.mark.parametrize("kind", ["global", "organization", "ou", "project"])
def test_valid_scopes(admin, account, units, kind):
    organization, unit_ids = units
    scopes = {"global": {}, "organization": {"organization": [organization.id]}, "ou": {"ou": unit_ids},
              "project": {"project": [7]}}[kind]
    data = assert_jsonapi(admin.post("/account_roles", role_doc(name="r", account_id=account.id, scopes=scopes)),
                          201)["data"]
    assert data["attributes"]["scopes"] == scopes
    assert data["attributes"]["scope_organization_id"] == (organization.id if kind == "ou" else None)


@pytest.mark.parametrize("scopes", [
    {"team": [1]},              # unknown scope key
    {"ou": 2},                  # not a list
    {"ou": ["2"]},              # ids are integers
    {"ou": [1.5]},
    {"ou": [True]},
    ["ou", 2],                  # not an object
])
def test_invalid_scopes_are_422(admin, account, scopes):
    error = error_of(admin.post("/account_roles", role_doc(name="r", account_id=account.id, scopes=scopes)), 422)
    assert error["source"]["pointer"] == "/data/attributes/scopes"
    assert assert_jsonapi(admin.get("/account_roles", params={"filter[account_id]": str(account.id)}),
                          200)["data"] == []


def test_invalid_scopes_on_update_are_422(admin, factory, account):
    role = factory.role(account, "r", scopes={"ou": [1]})
    error = error_of(admin.patch(f"/account_roles/{role.id}", role_doc(role.id, scopes={"galaxy": [1]})), 422)
    assert error["source"]["pointer"] == "/data/attributes/scopes"
    assert assert_jsonapi(admin.get(f"/account_roles/{role.id}"), 200)["data"]["attributes"]["scopes"] == {"ou": [1]}


@pytest.mark.parametrize("not_before, expires_at", [
    ("2030-01-02T00:00:00Z", "2030-01-01T00:00:00Z"),
    ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
])
def test_not_before_must_precede_expires_at(admin, account, not_before, expires_at):
    body = role_doc(name="r", account_id=account.id, not_before=not_before, expires_at=expires_at)
    error = error_of(admin.post("/account_roles", body), 422)
    assert error["source"]["pointer"] in ("/data/attributes/expires_at", "/data/attributes/not_before")


def test_window_is_checked_against_the_stored_bound_on_update(admin, factory, account):
    role = factory.role(account, "r", expires_at=datetime(2030, 1, 1, tzinfo=UTC))
    body = role_doc(role.id, not_before="2030-06-01T00:00:00Z")
    assert error_of(admin.patch(f"/account_roles/{role.id}", body), 422)["status"] == "422"


# ------------------------------------------------------------------ filters

T = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def roles(factory, account):
    """Roles by name; `admin` is the admin fixture's own role."""
    other = factory.account(email="other@example.com")
    made = {
        "viewer": factory.role(account, "viewer", info={"team": "red", "level": 1}),
        "org_admin": factory.role(account, "org_admin", scopes={"organization": [1]}),
        "ou_manager": factory.role(account, "ou_manager", scopes={"ou": [2, 3]}, info={"team": "blue"},
                                   expires_at=T),
        "auditor": factory.role(account, "auditor", scopes={"ou": [12]}, not_before=T),
        "developer": factory.role(other, "developer", scopes={"project": [7]}),
        "tester": factory.role(other, "tester", scopes={"project": [8, 9]}),
    }
    made["other_account_id"] = other.id
    return made


def names_of(admin, params):
    body = assert_jsonapi(admin.get("/account_roles", params=params), 200)
    return sorted(item["attributes"]["name"] for item in body["data"])


@pytest.mark.parametrize("params, expected", [
    ({"filter[name]": "viewer"}, ["viewer"]),
    ({"filter[name__in]": "viewer,developer"}, ["developer", "viewer"]),
    ({"filter[name__in][]": ["tester", "auditor"]}, ["auditor", "tester"]),
    ({"filter[scopes]": '{"ou":[2,3]}'}, ["ou_manager"]),
    ({"filter[scopes]": '{"ou": [2, 3]}'}, ["ou_manager"]),
    ({"filter[scopes]": '{"ou":[3,2]}'}, []),
    ({"filter[scopes]": "{}"}, ["admin", "viewer"]),
    ({"filter[info]": '{"team":"blue"}'}, ["ou_manager"]),
    ({"filter[info]": '{"level":1,"team":"red"}'}, ["viewer"]),
    ({"filter[with_scopes]": "ou"}, ["auditor", "ou_manager"]),
    ({"filter[with_scopes]": "ou:12"}, ["auditor"]),
    ({"filter[with_scopes]": "ou:3"}, ["ou_manager"]),
    ({"filter[with_scopes]": "organization"}, ["org_admin"]),
    ({"filter[with_scopes]": "project"}, ["developer", "tester"]),
    ({"filter[with_projects]": "7"}, ["developer"]),
    ({"filter[with_projects]": "7,8"}, ["developer", "tester"]),
    ({"filter[with_projects]": "9,12"}, ["tester"]),
    ({"filter[info__contains]": '{"team":"red"}'}, ["viewer"]),
    ({"filter[info__contains]": '{"team":"red","level":2}'}, []),
    ({"filter[scopes__contains]": '{"ou":[3]}'}, ["ou_manager"]),
    ({"filter[scopes__contains]": "{}"}, ["admin", "auditor", "developer", "org_admin", "ou_manager", "tester",
                                          "viewer"]),
    ({"filter[expires_at]": "2030-01-01T00:00:00.000000Z"}, ["ou_manager"]),
    ({"filter[expires_at]": "null", "filter[not_before]": "null", "filter[scopes]": "{}"}, ["admin", "viewer"]),
    ({"filter[not_before]": "2030-01-01T00:00:00Z"}, ["auditor"]),
])
def test_pulse_filters(admin, roles, params, expected):
    assert names_of(admin, params) == expected


def test_filter_by_id_and_account_id(admin, roles, account):
    assert names_of(admin, {"filter[id]": str(roles["tester"].id)}) == ["tester"]
    assert names_of(admin, {"filter[account_id]": str(roles["other_account_id"])}) == ["developer", "tester"]
    assert names_of(admin, {"filter[account_id]": str(account.id)}) == ["auditor", "org_admin", "ou_manager",
                                                                        "viewer"]


@pytest.mark.parametrize("attribute", ["created_at", "updated_at", "expires_at", "not_before"])
def test_rendered_timestamps_find_their_role(admin, roles, attribute):
    name = "auditor" if attribute == "not_before" else "ou_manager"
    value = assert_jsonapi(admin.get(f"/account_roles/{roles[name].id}"), 200)["data"]["attributes"][attribute]
    body = assert_jsonapi(admin.get("/account_roles", params={f"filter[{attribute}]": value}), 200)
    assert roles[name].id in ids(body)
    assert all(item["attributes"][attribute] == value for item in body["data"])


@pytest.mark.parametrize("param, value", [
    ("filter[with_scopes]", "team"),
    ("filter[with_projects]", "seven"),
    ("filter[info__contains]", "[1"),
])
def test_bad_filter_values_are_400(admin, roles, param, value):
    error = error_of(admin.get("/account_roles", params={param: value}), 400)
    assert error["source"]["parameter"] == param


# ------------------------------------------------------------------ included

def test_included_account_and_person(admin, factory):
    org = factory.organization()
    person = factory.person(org, first_name="Ada")
    holder = factory.account(email="ada@example.com", person_id=person.id, organization_id=org.id)
    role = factory.role(holder, "viewer")
    body = assert_jsonapi(admin.get(f"/account_roles/{role.id}", params={"included": "account,account.person"}), 200)
    assert body["data"]["relationships"]["account"]["data"] == {"type": "accounts", "id": str(holder.id)}
    included = {(item["type"], item["id"]): item for item in body["included"]}
    assert set(included) == {("accounts", str(holder.id)), ("people", str(person.id))}
    account_item = included[("accounts", str(holder.id))]
    assert account_item["relationships"]["person"]["data"] == {"type": "people", "id": str(person.id)}
    assert included[("people", str(person.id))]["attributes"]["first_name"] == "Ada"
    assert "password_hash" not in account_item["attributes"] and "password" not in account_item["attributes"]


def test_list_includes_each_account_once(admin, factory, account):
    factory.role(account, "viewer")
    factory.role(account, "editor")
    body = assert_jsonapi(admin.get("/account_roles", params={"filter[account_id]": str(account.id),
                                                              "included": "account.person"}), 200)
    assert len(body["data"]) == 2
    assert [(item["type"], item["id"]) for item in body["included"]] == [("accounts", str(account.id))]


# ------------------------------------------------------------------ Pulse alias

def test_pulse_type_alias_is_accepted_in_the_body(admin, account):
    body = role_doc(type_="iam/account/roles", name="viewer", account_id=account.id)
    data = assert_jsonapi(admin.post("/account_roles", body), 201)["data"]
    assert data["type"] == "account_roles"


def test_pulse_type_alias_is_accepted_on_update(admin, factory, account):
    role = factory.role(account, "viewer")
    body = role_doc(role.id, type_="iam/account/roles", name="editor")
    assert assert_jsonapi(admin.patch(f"/account_roles/{role.id}", body), 200)["data"]["attributes"]["name"] == "editor"


def test_pulse_type_alias_is_accepted_in_fields(admin, factory, account):
    role = factory.role(account, "viewer", scopes={"ou": [1]})
    body = assert_jsonapi(admin.get(f"/account_roles/{role.id}", params={"fields[iam/account/roles]": "name,scopes"}),
                          200)
    assert body["data"]["attributes"] == {"name": "viewer", "scopes": {"ou": [1]}}
    listed = assert_jsonapi(admin.get("/account_roles", params={"fields[iam/account/roles]": "name"}), 200)
    assert all(set(item["attributes"]) == {"name"} for item in listed["data"])


def test_wrong_type_is_409(admin, account):
    error = error_of(admin.post("/account_roles", role_doc(type_="accounts", name="viewer", account_id=account.id)),
                     409)
    assert error["source"]["pointer"] == "/data/type"
