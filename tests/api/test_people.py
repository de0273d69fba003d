"""people over HTTP: CRUD, attributes, the Pulse filters, includes and tenant checks (API.md section 4)."""
import datetime

import pytest

from tests.helpers import API, assert_jsonapi, error_of, ids


def person_doc(id_=None, **attributes):
    data = {"type": "people", "attributes": attributes}
    if id_ is not None:
        data["id"] = str(id_)
    return {"data": data}


@pytest.fixture
def org(factory):
    return factory.organization()


FULL = {
    "first_name": "Ada",
    "middle_name": "King",
    "last_name": "Lovelace",
    "picture_url": "https://img.example.com/ada.png",
    "gender": "female",
    "birthday": "1815-12-10",
    "secondary_email": "ada@math.example.org",
    "contact_number": "+44 20 7946 0000",
    "physical_address": "12 St James's Square, London",
    "facets": ["vip", "beta"],
}


# ------------------------------------------------------------------ CRUD

def test_create_returns_201_location_and_every_attribute(admin, org, factory):
    unit = factory.unit(org, "sales")
    attributes = {**FULL, "organization_id": org.id, "organizational_unit_id": unit.id}
    response = admin.post("/people", person_doc(**attributes))
    data = assert_jsonapi(response, 201)["data"]
    assert data["type"] == "people"
    assert response.headers["Location"].endswith(f"{API}/people/{data['id']}")
    for name, value in attributes.items():
        assert data["attributes"][name] == value, name
    assert data["attributes"]["created_at"].endswith("Z")
    assert data["attributes"]["updated_at"].endswith("Z")
    assert "id" not in data["attributes"] and "type" not in data["attributes"]


def test_every_attribute_round_trips_through_show(admin, org):
    created = assert_jsonapi(admin.post("/people", person_doc(organization_id=org.id, **FULL)), 201)["data"]
    shown = assert_jsonapi(admin.get(f"/people/{created['id']}"), 200)["data"]
    assert shown["attributes"] == created["attributes"]
    assert shown["attributes"]["birthday"] == "1815-12-10"
    assert shown["attributes"]["facets"] == ["vip", "beta"]


def test_minimal_person_has_empty_facets_and_null_fields(admin, org):
    data = assert_jsonapi(admin.post("/people", person_doc(organization_id=org.id)), 201)["data"]
    assert data["attributes"]["facets"] == []
    assert data["attributes"]["birthday"] is None
    assert data["attributes"]["organizational_unit_id"] is None


def test_update_changes_attributes(admin, org, factory):
    person = factory.person(org, first_name="Ada", facets=["vip"])
    body = person_doc(person.id, first_name="Augusta", birthday="1815-12-10", facets=["a", "b", "c"])
    data = assert_jsonapi(admin.patch(f"/people/{person.id}", body), 200)["data"]
    assert data["attributes"]["first_name"] == "Augusta"
    assert data["attributes"]["birthday"] == "1815-12-10"
    assert data["attributes"]["facets"] == ["a", "b", "c"]
    shown = assert_jsonapi(admin.get(f"/people/{person.id}"), 200)["data"]
    assert shown["attributes"]["first_name"] == "Augusta"


def test_update_can_clear_birthday(admin, org, factory):
    person = factory.person(org, birthday=datetime.date(1990, 1, 2))
    data = assert_jsonapi(admin.patch(f"/people/{person.id}", person_doc(person.id, birthday=None)), 200)["data"]
    assert data["attributes"]["birthday"] is None


def test_delete_is_204_then_404(admin, org, factory):
    person = factory.person(org)
    response = admin.delete(f"/people/{person.id}")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert error_of(admin.get(f"/people/{person.id}"), 404)["code"] == "not_found"


@pytest.mark.parametrize("birthday", ["1990-13-01", 19900101])
def test_invalid_birthday_is_422(admin, org, birthday):
    error = error_of(admin.post("/people", person_doc(organization_id=org.id, birthday=birthday)), 422)
    assert error["source"]["pointer"] == "/data/attributes/birthday"


def test_facets_must_be_an_array_of_strings(admin, org):
    error = error_of(admin.post("/people", person_doc(organization_id=org.id, facets="vip")), 422)
    assert error["source"]["pointer"].startswith("/data/attributes/facets")


# ------------------------------------------------------------------ tenant checks

def test_unit_of_another_organization_is_422(admin, org, factory):
    other_unit = factory.unit(factory.organization(), "elsewhere")
    response = admin.post("/people", person_doc(organization_id=org.id, organizational_unit_id=other_unit.id))
    error = error_of(response, 422)
    assert error["source"]["pointer"] == "/data/attributes/organizational_unit_id"
    assert assert_jsonapi(admin.get("/people"), 200)["data"] == []


def test_moving_a_person_to_a_unit_of_another_organization_is_422(admin, org, factory):
    person = factory.person(org)
    other_unit = factory.unit(factory.organization(), "elsewhere")
    response = admin.patch(f"/people/{person.id}", person_doc(person.id, organizational_unit_id=other_unit.id))
    error = error_of(response, 422)
    assert error["source"]["pointer"] == "/data/attributes/organizational_unit_id"
    shown = assert_jsonapi(admin.get(f"/people/{person.id}"), 200)["data"]
    assert shown["attributes"]["organizational_unit_id"] is None


def test_unknown_organization_is_422_with_pointer(admin):
    error = error_of(admin.post("/people", person_doc(organization_id=999999, first_name="X")), 422)
    assert error["source"]["pointer"] == "/data/attributes/organization_id"


def test_unknown_unit_is_422_with_pointer(admin, org):
    error = error_of(admin.post("/people", person_doc(organization_id=org.id, organizational_unit_id=999999)), 422)
    assert error["source"]["pointer"] == "/data/attributes/organizational_unit_id"


def test_organization_is_required(admin):
    error = error_of(admin.post("/people", person_doc(first_name="Nobody")), 422)
    assert error["source"]["pointer"] == "/data/attributes/organization_id"


# ------------------------------------------------------------------ filters

@pytest.fixture
def people(factory, org):
    """ada (enabled account), alan (disabled account), grace (no account)."""
    ada = factory.person(org, first_name="Ada", last_name="Lovelace", secondary_email="ada@math.example.org",
                         contact_number="+44 1234", facets=["vip", "beta"])
    alan = factory.person(org, first_name="Alan", last_name="Turing", secondary_email="alan@code.example.org",
                          contact_number="+44 9999", facets=["vip"])
    grace = factory.person(org, first_name="Grace", last_name="Hopper", contact_number="+1 555 0100", facets=[])
    factory.account(email="countess@example.com", person_id=ada.id, organization_id=org.id)
    factory.account(email="enigma@example.com", person_id=alan.id, organization_id=org.id, enabled=False)
    return {"ada": ada.id, "alan": alan.id, "grace": grace.id}


def names_of(body, people):
    by_id = {v: k for k, v in people.items()}
    return sorted(by_id[int(item["id"])] for item in body["data"])


@pytest.mark.parametrize("params, expected", [
    ({"filter[first_name__match]": "GRA"}, ["grace"]),
    ({"filter[last_name__match]": "ing"}, ["alan"]),
    ({"filter[email__match]": "ENIGMA"}, ["alan"]),
    ({"filter[email__match]": "example.com"}, ["ada", "alan"]),
    ({"filter[secondary_email__match]": "MATH"}, ["ada"]),
    ({"filter[contact_number__match]": "555"}, ["grace"]),
    ({"filter[enabled]": "true"}, ["ada"]),
    ({"filter[enabled]": "false"}, ["alan"]),
    ({"filter[search]": "lovelace"}, ["ada"]),
    ({"filter[search]": "grace hopper"}, ["grace"]),
    ({"filter[search]": "grace turing"}, []),
    ({"filter[search]": "countess@"}, ["ada"]),
    ({"filter[search]": "code.example"}, ["alan"]),
    ({"filter[facets__contains]": "vip"}, ["ada", "alan"]),
    ({"filter[facets__contains]": "vip,beta"}, ["ada"]),
    ({"filter[facets__contains][]": ["beta", "vip"]}, ["ada"]),
    ({"filter[facets__contains]": "vip,nope"}, []),
])
def test_pulse_filters(admin, people, params, expected):
    body = assert_jsonapi(admin.get("/people", params=params), 200)
    assert names_of(body, people) == expected


def test_filter_id_in(admin, people):
    params = {"filter[id__in]": f"{people['ada']},{people['grace']}"}
    body = assert_jsonapi(admin.get("/people", params=params), 200)
    assert ids(body) == sorted([people["ada"], people["grace"]])


def test_filters_combine_with_and_and_count(admin, people):
    params = {"filter[facets__contains]": "vip", "filter[enabled]": "false", "count": "true"}
    body = assert_jsonapi(admin.get("/people", params=params), 200)
    assert names_of(body, people) == ["alan"]
    assert body["meta"]["count"] == 1


@pytest.mark.parametrize("param", ["filter[nickname]", "filter[enabled]"])
def test_bad_filters_are_400(admin, people, param):
    value = "maybe" if param == "filter[enabled]" else "x"
    error = error_of(admin.get("/people", params={param: value}), 400)
    assert error["source"]["parameter"] == param


# ------------------------------------------------------------------ included

@pytest.fixture
def placed_person(factory, org):
    unit = factory.unit(org, "research")
    person = factory.person(org, first_name="Ada", organizational_unit_id=unit.id)
    account = factory.account(email="ada@example.com", person_id=person.id, organization_id=org.id)
    return person, account, unit


def test_show_includes_account_and_unit(admin, placed_person):
    person, account, unit = placed_person
    body = assert_jsonapi(admin.get(f"/people/{person.id}", params={"included": "account,organizational_unit"}), 200)
    relationships = body["data"]["relationships"]
    assert relationships["account"]["data"] == {"type": "accounts", "id": str(account.id)}
    assert relationships["organizational_unit"]["data"] == {"type": "organizational_units", "id": str(unit.id)}
    included = {(item["type"], item["id"]): item for item in body["included"]}
    assert set(included) == {("accounts", str(account.id)), ("organizational_units", str(unit.id))}
    assert included[("accounts", str(account.id))]["attributes"]["email"] == "ada@example.com"
    assert "password_hash" not in included[("accounts", str(account.id))]["attributes"]
    assert included[("organizational_units", str(unit.id))]["attributes"]["path"] == "/research"


def test_list_includes_account_with_include_alias(admin, placed_person, factory, org):
    person, account, _ = placed_person
    loner = factory.person(org, first_name="Loner")
    body = assert_jsonapi(admin.get("/people", params={"include": "account"}), 200)
    by_id = {item["id"]: item for item in body["data"]}
    assert by_id[str(person.id)]["relationships"]["account"]["data"] == {"type": "accounts", "id": str(account.id)}
    assert by_id[str(loner.id)]["relationships"]["account"]["data"] is None
    assert [(i["type"], i["id"]) for i in body["included"]] == [("accounts", str(account.id))]


def test_relationship_links_are_present(admin, placed_person):
    person, _, _ = placed_person
    data = assert_jsonapi(admin.get(f"/people/{person.id}"), 200)["data"]
    links = data["relationships"]["account"]["links"]
    assert links["related"].endswith(f"/people/{person.id}/account")
    assert links["self"].endswith(f"/people/{person.id}/relationships/account")


def test_related_account_endpoint(admin, placed_person):
    person, account, _ = placed_person
    body = assert_jsonapi(admin.get(f"/people/{person.id}/account"), 200)
    assert body["data"]["type"] == "accounts" and body["data"]["id"] == str(account.id)


def test_unknown_include_is_400(admin, placed_person):
    person, _, _ = placed_person
    error = error_of(admin.get(f"/people/{person.id}", params={"included": "friends"}), 400)
    assert error["source"]["parameter"] == "included"
