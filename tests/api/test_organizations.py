"""organizations over HTTP: CRUD, slug rules, quota attributes, filters, delete in use (API.md section 4)."""
import pytest

from tests.helpers import API, assert_jsonapi, error_of


def org_doc(id_=None, **attributes):
    data = {"type": "organizations", "attributes": attributes}
    if id_ is not None:
        data["id"] = str(id_)
    return {"data": data}


# ------------------------------------------------------------------ CRUD

def test_create_returns_201_location_and_attributes(admin):
    response = admin.post("/organizations", org_doc(name="Acme Corp", slug="acme_corp-1", quota_limit=10))
    data = assert_jsonapi(response, 201)["data"]
    assert data["type"] == "organizations"
    assert response.headers["Location"].endswith(f"{API}/organizations/{data['id']}")
    attributes = data["attributes"]
    assert attributes["name"] == "Acme Corp"
    assert attributes["slug"] == "acme_corp-1"
    assert attributes["enabled"] is True
    assert attributes["quota_limit"] == 10
    assert attributes["quota_usage"] == 0
    assert attributes["quota_remaining"] == 10
    assert attributes["created_at"].endswith("Z") and attributes["updated_at"].endswith("Z")


def test_show_round_trips(admin):
    created = assert_jsonapi(admin.post("/organizations", org_doc(name="Acme", slug="acme", enabled=False)), 201)
    shown = assert_jsonapi(admin.get(f"/organizations/{created['data']['id']}"), 200)["data"]
    assert shown["attributes"] == created["data"]["attributes"]
    assert shown["attributes"]["enabled"] is False
    assert shown["attributes"]["quota_limit"] is None
    assert shown["attributes"]["quota_remaining"] is None


def test_update_name_enabled_and_limit(admin, factory):
    org = factory.organization(name="Old", quota_usage=4)
    body = org_doc(org.id, name="New", enabled=False, quota_limit=10)
    data = assert_jsonapi(admin.patch(f"/organizations/{org.id}", body), 200)["data"]
    assert data["attributes"]["name"] == "New"
    assert data["attributes"]["enabled"] is False
    assert data["attributes"]["quota_remaining"] == 6
    assert assert_jsonapi(admin.get(f"/organizations/{org.id}"), 200)["data"]["attributes"]["name"] == "New"


def test_delete_is_204_then_404(admin, factory):
    org = factory.organization()
    response = admin.delete(f"/organizations/{org.id}")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert error_of(admin.get(f"/organizations/{org.id}"), 404)["code"] == "not_found"


@pytest.mark.parametrize("missing", ["name", "slug"])
def test_name_and_slug_are_required(admin, missing):
    attributes = {"name": "Acme", "slug": "acme"}
    del attributes[missing]
    error = error_of(admin.post("/organizations", org_doc(**attributes)), 422)
    assert error["source"]["pointer"] == f"/data/attributes/{missing}"


# ------------------------------------------------------------------ slug

@pytest.mark.parametrize("slug", ["has space", "dot.ted", "ümlaut", ""])
def test_bad_slug_is_422(admin, slug):
    error = error_of(admin.post("/organizations", org_doc(name="Acme", slug=slug)), 422)
    assert error["source"]["pointer"] == "/data/attributes/slug"
    assert assert_jsonapi(admin.get("/organizations"), 200)["data"] == []


def test_bad_slug_on_update_is_422(admin, factory):
    org = factory.organization(slug="good")
    error = error_of(admin.patch(f"/organizations/{org.id}", org_doc(org.id, slug="not good")), 422)
    assert error["source"]["pointer"] == "/data/attributes/slug"
    assert assert_jsonapi(admin.get(f"/organizations/{org.id}"), 200)["data"]["attributes"]["slug"] == "good"


def test_slug_must_be_unique_on_create(admin, factory):
    factory.organization(slug="acme")
    error = error_of(admin.post("/organizations", org_doc(name="Other", slug="acme")), 409)
    assert error["code"] == "not_unique"
    assert len(assert_jsonapi(admin.get("/organizations"), 200)["data"]) == 1


def test_slug_must_be_unique_on_update(admin, factory):
    factory.organization(slug="acme")
    org = factory.organization(slug="other")
    error = error_of(admin.patch(f"/organizations/{org.id}", org_doc(org.id, slug="acme")), 409)
    assert error["code"] == "not_unique"


def test_keeping_own_slug_is_fine(admin, factory):
    org = factory.organization(slug="acme")
    body = org_doc(org.id, slug="acme", name="Renamed")
    assert assert_jsonapi(admin.patch(f"/organizations/{org.id}", body), 200)["data"]["attributes"]["slug"] == "acme"


# ------------------------------------------------------------------ quota

@pytest.mark.parametrize("attribute", ["quota_usage", "quota_remaining"])
def test_quota_usage_and_remaining_are_read_only_on_create(admin, attribute):
    error = error_of(admin.post("/organizations", org_doc(name="Acme", slug="acme", **{attribute: 5})), 422)
    assert error["source"]["pointer"] == f"/data/attributes/{attribute}"
    assert assert_jsonapi(admin.get("/organizations"), 200)["data"] == []


@pytest.mark.parametrize("attribute", ["quota_usage", "quota_remaining"])
def test_quota_usage_and_remaining_are_read_only_on_update(admin, factory, attribute):
    org = factory.organization(quota_limit=10, quota_usage=3)
    error = error_of(admin.patch(f"/organizations/{org.id}", org_doc(org.id, **{attribute: 0})), 422)
    assert error["source"]["pointer"] == f"/data/attributes/{attribute}"
    attributes = assert_jsonapi(admin.get(f"/organizations/{org.id}"), 200)["data"]["attributes"]
    assert (attributes["quota_usage"], attributes["quota_remaining"]) == (3, 7)


@pytest.mark.parametrize("limit, usage, remaining", [(10, 3, 7), (5, 5, 0), (None, 12, None)])
def test_quota_remaining_is_limit_minus_usage(admin, factory, limit, usage, remaining):
    org = factory.organization(quota_limit=limit, quota_usage=usage)
    attributes = assert_jsonapi(admin.get(f"/organizations/{org.id}"), 200)["data"]["attributes"]
    assert attributes["quota_limit"] == limit
    assert attributes["quota_usage"] == usage
    assert attributes["quota_remaining"] == remaining


@pytest.mark.parametrize("limit", [-1, "ten"])
def test_bad_quota_limit_is_422(admin, limit):
    error = error_of(admin.post("/organizations", org_doc(name="Acme", slug="acme", quota_limit=limit)), 422)
    assert error["source"]["pointer"] == "/data/attributes/quota_limit"


# ------------------------------------------------------------------ filters

@pytest.fixture
def orgs(factory):
    return {
        "acme": factory.organization(name="Acme Corporation", slug="acme", quota_limit=100).id,
        "globex": factory.organization(name="Globex", slug="globex-intl", quota_limit=10, enabled=False).id,
        "initech": factory.organization(name="Initech", slug="initech", quota_limit=None).id,
    }


@pytest.mark.parametrize("params, expected", [
    ({"filter[name__match]": "CORP"}, ["acme"]),
    ({"filter[search]": "INTL"}, ["globex"]),
    ({"filter[search]": "acme corporation"}, ["acme"]),
    ({"filter[search]": "acme globex"}, []),
    ({"filter[enabled]": "true"}, ["acme", "initech"]),
    ({"filter[enabled]": "false"}, ["globex"]),
    ({"filter[quota_limit__gte]": "10"}, ["acme", "globex"]),
    ({"filter[quota_limit__gte]": "11"}, ["acme"]),
    ({"filter[quota_limit]": "null"}, ["initech"]),
])
def test_filters(admin, orgs, params, expected):
    by_id = {v: k for k, v in orgs.items()}
    body = assert_jsonapi(admin.get("/organizations", params=params), 200)
    assert sorted(by_id[int(item["id"])] for item in body["data"]) == expected


def test_bad_filter_value_is_400(admin, orgs):
    error = error_of(admin.get("/organizations", params={"filter[quota_limit__gte]": "lots"}), 400)
    assert error["source"]["parameter"] == "filter[quota_limit__gte]"


# ------------------------------------------------------------------ delete in use

def test_delete_with_people_is_409_and_nothing_is_deleted(admin, factory):
    org = factory.organization()
    person = factory.person(org, first_name="Ada")
    error = error_of(admin.delete(f"/organizations/{org.id}"), 409)
    assert error["code"] == "in_use"
    assert assert_jsonapi(admin.get(f"/organizations/{org.id}"), 200)["data"]["id"] == str(org.id)
    shown = assert_jsonapi(admin.get(f"/people/{person.id}"), 200)["data"]
    assert shown["attributes"]["organization_id"] == org.id


def test_delete_with_people_and_accounts_keeps_the_accounts_linked(admin, factory):
    org = factory.organization()
    person = factory.person(org, first_name="Ada")
    account = factory.account(email="ada@example.com", person_id=person.id, organization_id=org.id)
    error = error_of(admin.delete(f"/organizations/{org.id}"), 409)
    assert error["code"] == "in_use"
    attributes = assert_jsonapi(admin.get(f"/accounts/{account.id}"), 200)["data"]["attributes"]
    assert attributes["organization_id"] == org.id
    assert attributes["person_id"] == person.id


@pytest.mark.filterwarnings("error")
def test_a_blank_search_is_no_condition(admin, factory):
    """`filter[search]=   ` matches everything (it built an empty and_(), which SQLAlchemy deprecates)."""
    factory.organization(name="Acme", slug="acme")
    factory.organization(name="Globex", slug="globex")
    body = assert_jsonapi(admin.get("/organizations", {"filter[search]": "   ", "count": "true"}), 200)
    assert body["meta"]["count"] == 2
