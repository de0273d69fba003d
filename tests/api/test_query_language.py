"""The query language over HTTP: sort, paging, list encodings, included, fields,
relationship endpoints, ETags and rendering (API.md sections 1 and 2)."""
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from iam.extensions import db
from iam.models import Organization
from tests.helpers import PASSWORD_HASH, assert_jsonapi

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def names(body):
    return [item["attributes"]["name"] for item in body["data"]]


def id_list(body):
    return [item["id"] for item in body["data"]]


def keys(items):
    return [(item["type"], item["id"]) for item in items]


def relative(url):
    """An absolute link from a response -> the path and query the test client can follow."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def query_of(url):
    return parse_qs(urlsplit(url).query)


def get_ok(api, path, params=None):
    return assert_jsonapi(api.get(path, params), 200)


def patch_org(api, org, headers=None, **attributes):
    body = {"data": {"type": "organizations", "id": str(org.id), "attributes": attributes}}
    return api.patch(f"/organizations/{org.id}", body, headers=headers)


# ---------------------------------------------------------------- sort

def test_sort_single_key_ascending_and_descending(admin, factory):
    for name in ("beta", "alpha", "gamma"):
        factory.organization(name=name)
    assert names(get_ok(admin, "/organizations", {"sort": "name"})) == ["alpha", "beta", "gamma"]
    assert names(get_ok(admin, "/organizations", {"sort": "-name"})) == ["gamma", "beta", "alpha"]


def test_sort_multi_key_applied_in_order(admin, factory):
    factory.organization(name="a", enabled=True)
    factory.organization(name="b", enabled=False)
    factory.organization(name="c", enabled=True)
    factory.organization(name="d", enabled=False)
    assert names(get_ok(admin, "/organizations", {"sort": "enabled,-name"})) == ["d", "b", "c", "a"]
    assert names(get_ok(admin, "/organizations", {"sort": "-enabled,name"})) == ["a", "c", "b", "d"]


@pytest.mark.parametrize("sort", ["name", "-name"])
def test_sort_ties_are_broken_by_id_ascending(admin, factory, sort):
    orgs = [factory.organization(name="same") for _ in range(4)]
    factory.organization(name="zzz")
    body = get_ok(admin, "/organizations", {"sort": sort})
    same = [item["id"] for item in body["data"] if item["attributes"]["name"] == "same"]
    assert same == [str(o.id) for o in orgs]


def test_default_order_is_id_ascending(admin, factory):
    orgs = [factory.organization(name=name) for name in ("c", "a", "b")]
    assert id_list(get_ok(admin, "/organizations")) == [str(o.id) for o in orgs]


def test_nulls_sort_the_same_on_every_database(admin, factory):
    """Nulls count as the largest value: last ascending, first descending (ties by id)."""
    n1 = factory.organization(name="n1", quota_limit=None)
    five = factory.organization(name="five", quota_limit=5)
    n2 = factory.organization(name="n2", quota_limit=None)
    one = factory.organization(name="one", quota_limit=1)
    asc = get_ok(admin, "/organizations", {"sort": "quota_limit"})
    desc = get_ok(admin, "/organizations", {"sort": "-quota_limit"})
    assert id_list(asc) == [str(o.id) for o in (one, five, n1, n2)]
    assert id_list(desc) == [str(o.id) for o in (n1, n2, five, one)]


# ---------------------------------------------------------------- paging

def test_page_number_and_size_select_the_right_slice(admin, factory):
    orgs = [factory.organization() for _ in range(5)]
    body = get_ok(admin, "/organizations", {"page[number]": "2", "page[size]": "2"})
    assert id_list(body) == [str(orgs[2].id), str(orgs[3].id)]
    body = get_ok(admin, "/organizations", {"page[number]": "3", "page[size]": "2"})
    assert id_list(body) == [str(orgs[4].id)]
    body = get_ok(admin, "/organizations", {"page[number]": "4", "page[size]": "2"})
    assert body["data"] == []


def test_default_page_size_is_1000(admin, app):
    with app.app_context():  # one bulk insert: 1001 factory commits would be slow
        db.session.add_all([Organization(name=f"bulk {i}", slug=f"bulk-{i}") for i in range(1001)])
        db.session.commit()
    first = get_ok(admin, "/organizations")
    assert len(first["data"]) == 1000
    assert first["links"]["next"] is not None
    second = get_ok(admin, relative(first["links"]["next"]))
    assert len(second["data"]) == 1
    assert second["links"]["next"] is None


def test_links_on_first_middle_and_last_page(admin, factory):
    for _ in range(5):
        factory.organization()
    first = get_ok(admin, "/organizations", {"page[size]": "2"})["links"]
    assert first["self"] and query_of(first["first"])["page[number]"] == ["1"]
    assert first["prev"] is None
    assert query_of(first["next"])["page[number]"] == ["2"]
    assert first.get("last") is None  # total unknown without count=true

    middle = get_ok(admin, "/organizations", {"page[size]": "2", "page[number]": "2"})["links"]
    assert query_of(middle["prev"])["page[number]"] == ["1"]
    assert query_of(middle["next"])["page[number]"] == ["3"]
    assert query_of(middle["next"])["page[size]"] == ["2"]

    last = get_ok(admin, "/organizations", {"page[size]": "2", "page[number]": "3"})["links"]
    assert last["next"] is None
    assert query_of(last["prev"])["page[number]"] == ["2"]


def test_count_gives_total_matching_filters_and_last_link(admin, factory):
    for i in range(5):
        factory.organization(name=f"keep {i}")
    for i in range(2):
        factory.organization(name=f"drop {i}")
    body = get_ok(admin, "/organizations", {"filter[name__match]": "keep", "page[size]": "2", "count": "true"})
    assert len(body["data"]) == 2
    assert body["meta"]["count"] == 5
    assert query_of(body["links"]["last"])["page[number]"] == ["3"]
    assert query_of(body["links"]["last"])["filter[name__match]"] == ["keep"]


def test_no_count_without_count_true(admin, factory):
    factory.organization()
    body = get_ok(admin, "/organizations")
    assert "count" not in body.get("meta", {})


def test_following_next_links_walks_every_row_once(admin, factory):
    wanted = [str(factory.organization(name=f"walk {i}").id) for i in range(7)]
    factory.organization(name="other")
    seen, path, pages = [], "/organizations", 0
    params = {"filter[name__prefix]": "walk", "sort": "-name", "page[size]": "3", "count": "true"}
    while path:
        body = get_ok(admin, path, params)
        params = None  # the links carry every parameter from here on
        seen += id_list(body)
        assert body["meta"]["count"] == 7
        path = body["links"]["next"] and relative(body["links"]["next"])
        pages += 1
    assert pages == 3
    assert seen == list(reversed(wanted))


# ---------------------------------------------------------------- list encodings

def test_filter_list_comma_and_bracket_forms_agree(admin, factory):
    orgs = [factory.organization() for _ in range(3)]
    a, b = str(orgs[0].id), str(orgs[2].id)
    comma = get_ok(admin, "/organizations", {"filter[id__in]": f"{a},{b}"})
    bracket = get_ok(admin, "/organizations", {"filter[id__in][]": [a, b]})
    assert id_list(comma) == id_list(bracket) == [a, b]


def _account_with_person(factory, org=None, **person):
    org = org or factory.organization()
    person_row = factory.person(org, **person)
    return factory.account(person_id=person_row.id, organization_id=org.id, roles=["reader"]), person_row, org


@pytest.mark.parametrize("params", [
    {"included[]": ["person", "organization"]},
    {"include": "person,organization"},
    {"include[]": ["person", "organization"]},
])
def test_included_encodings_and_include_alias_agree(admin, factory, params):
    account, person, org = _account_with_person(factory)
    path = f"/accounts/{account.id}"
    expected = get_ok(admin, path, {"included": "person,organization"})
    assert sorted(keys(expected["included"])) == sorted([("people", str(person.id)),
                                                         ("organizations", str(org.id))])
    assert get_ok(admin, path, params)["included"] == expected["included"]


def test_fields_comma_and_bracket_forms_agree(admin, factory):
    org = factory.organization()
    factory.person(org, first_name="Ada", last_name="Lovelace", gender="f")
    comma = get_ok(admin, "/people", {"fields[people]": "first_name,last_name"})
    bracket = get_ok(admin, "/people", {"fields[people][]": ["first_name", "last_name"]})
    assert comma["data"][0]["attributes"] == {"first_name": "Ada", "last_name": "Lovelace"}
    assert bracket["data"] == comma["data"]


# ---------------------------------------------------------------- included

def test_included_resources_appear_once_with_full_linkage(admin, factory):
    org = factory.organization()
    a1, p1, _ = _account_with_person(factory, org)
    a2, p2, _ = _account_with_person(factory, org)
    body = get_ok(admin, "/accounts", {"filter[id__in]": f"{a1.id},{a2.id}",
                                       "included": "person,organization,roles"})
    included = keys(body["included"])
    assert len(included) == len(set(included))
    assert included.count(("organizations", str(org.id))) == 1
    role_keys = [k for k in included if k[0] == "account_roles"]
    assert len(role_keys) == 2
    assert {("people", str(p1.id)), ("people", str(p2.id))} <= set(included)
    for item, person in zip(body["data"], (p1, p2)):
        rels = item["relationships"]
        assert rels["person"]["data"] == {"type": "people", "id": str(person.id)}
        assert rels["organization"]["data"] == {"type": "organizations", "id": str(org.id)}
        assert [d["type"] for d in rels["roles"]["data"]] == ["account_roles"]
    linked = {(d["type"], d["id"]) for item in body["data"] for d in item["relationships"]["roles"]["data"]}
    assert linked == set(role_keys)


def test_dotted_include_path_nests(admin, factory):
    org = factory.organization()
    unit = factory.unit(org, name="sales")
    account, person, _ = _account_with_person(factory, org, organizational_unit_id=unit.id)
    body = get_ok(admin, f"/accounts/{account.id}", {"included": "person.organizational_unit"})
    assert sorted(keys(body["included"])) == sorted([("people", str(person.id)),
                                                     ("organizational_units", str(unit.id))])
    included_person = next(i for i in body["included"] if i["type"] == "people")
    assert included_person["relationships"]["organizational_unit"]["data"] == {
        "type": "organizational_units", "id": str(unit.id)}
    assert body["data"]["relationships"]["person"]["data"] == {"type": "people", "id": str(person.id)}


def test_include_back_to_primary_does_not_duplicate_it(admin, factory):
    account, _, _ = _account_with_person(factory)
    body = get_ok(admin, "/accounts", {"included": "roles.account"})
    primary = set(keys(body["data"]))
    included = keys(body["included"])
    assert not primary & set(included)
    assert all(t == "account_roles" for t, _ in included)
    assert len(included) == len(set(included)) == 2  # admin's role and the reader role


def test_to_one_linkage_without_include_and_to_many_links_only(admin, factory):
    account, person, org = _account_with_person(factory)
    body = get_ok(admin, f"/accounts/{account.id}")
    rels = body["data"]["relationships"]
    assert rels["person"]["data"] == {"type": "people", "id": str(person.id)}
    assert rels["organization"]["data"] == {"type": "organizations", "id": str(org.id)}
    assert "data" not in rels["roles"]
    assert rels["roles"]["links"]["related"].endswith(f"/accounts/{account.id}/roles")
    assert rels["roles"]["links"]["self"].endswith(f"/accounts/{account.id}/relationships/roles")
    assert "included" not in body


def test_to_one_linkage_is_null_when_the_foreign_key_is_null(admin, factory):
    account = factory.account()
    rels = get_ok(admin, f"/accounts/{account.id}")["data"]["relationships"]
    assert rels["person"]["data"] is None


# ---------------------------------------------------------------- sparse fieldsets

@pytest.mark.parametrize("type_key", ["accounts", "iam/accounts"])
def test_sparse_fields_on_primary_data(admin, factory, type_key):
    account, _, _ = _account_with_person(factory)
    body = get_ok(admin, f"/accounts/{account.id}", {f"fields[{type_key}]": "email,enabled"})
    assert body["data"]["attributes"] == {"email": account.email, "enabled": True}
    assert "relationships" not in body["data"]
    assert body["data"]["id"] == str(account.id)


@pytest.mark.parametrize("type_key", ["people", "iam/people"])
def test_sparse_fields_on_included_resources(admin, factory, type_key):
    account, _, _ = _account_with_person(factory, first_name="Ada", last_name="Lovelace")
    body = get_ok(admin, f"/accounts/{account.id}", {"included": "person", f"fields[{type_key}]": "first_name"})
    (person,) = body["included"]
    assert person["attributes"] == {"first_name": "Ada"}
    assert "relationships" not in person
    assert "email" in body["data"]["attributes"]  # other types keep every field


def test_pulse_alias_for_fields_on_a_collection(admin, factory):
    factory.account(email="someone@example.com")
    body = get_ok(admin, "/accounts", {"fields[iam/accounts]": "email"})
    assert [item["attributes"] for item in body["data"]] == [
        {"email": "admin@example.com"}, {"email": "someone@example.com"}]


# ---------------------------------------------------------------- relationship endpoints

def test_related_to_many_takes_filter_sort_and_page(admin, factory):
    account = factory.account(roles=["alpha", "beta", "gamma"])
    factory.account(roles=["alpha"])  # someone else's role never shows up
    path = f"/accounts/{account.id}/roles"
    body = get_ok(admin, path)
    assert [r["attributes"]["name"] for r in body["data"]] == ["alpha", "beta", "gamma"]
    assert {r["type"] for r in body["data"]} == {"account_roles"}
    body = get_ok(admin, path, {"sort": "-name", "page[size]": "2", "count": "true"})
    assert [r["attributes"]["name"] for r in body["data"]] == ["gamma", "beta"]
    assert body["meta"]["count"] == 3
    assert body["links"]["next"] is not None
    body = get_ok(admin, path, {"filter[name]": "beta"})
    assert [r["attributes"]["name"] for r in body["data"]] == ["beta"]


def test_related_to_one(admin, factory):
    account, person, _ = _account_with_person(factory, first_name="Ada")
    body = get_ok(admin, f"/accounts/{account.id}/person")
    assert body["data"]["type"] == "people" and body["data"]["id"] == str(person.id)
    assert body["data"]["attributes"]["first_name"] == "Ada"


@pytest.mark.parametrize("suffix", ["person", "relationships/person"])
def test_related_to_one_without_a_row_is_data_null(admin, factory, suffix):
    lonely = factory.account()
    body = get_ok(admin, f"/accounts/{lonely.id}/{suffix}")
    assert body["data"] is None
    assert urlsplit(body["links"]["self"]).path.endswith(f"/accounts/{lonely.id}/{suffix}")


def test_relationship_linkage_endpoints(admin, factory):
    account, person, _ = _account_with_person(factory)
    own = f"/accounts/{account.id}"
    roles = get_ok(admin, f"{own}/relationships/roles")
    assert [tuple(sorted(d)) for d in roles["data"]] == [("id", "type")]
    assert roles["data"][0]["type"] == "account_roles"
    assert urlsplit(roles["links"]["self"]).path.endswith(f"{own}/relationships/roles")
    assert roles["links"]["related"].endswith(f"{own}/roles")

    linkage = get_ok(admin, f"{own}/relationships/person")
    assert linkage["data"] == {"type": "people", "id": str(person.id)}
    assert urlsplit(linkage["links"]["self"]).path.endswith(f"{own}/relationships/person")
    assert linkage["links"]["related"].endswith(f"{own}/person")
    assert "attributes" not in linkage["data"]


# ---------------------------------------------------------------- ETags

def test_etag_and_if_none_match(admin, factory):
    org = factory.organization()
    response = admin.get(f"/organizations/{org.id}")
    assert_jsonapi(response, 200)
    etag = response.headers["ETag"]
    assert etag
    again = admin.get(f"/organizations/{org.id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag


def test_if_match_guards_patch(admin, factory):
    org = factory.organization(name="original")
    stale = admin.get(f"/organizations/{org.id}").headers["ETag"]
    changed = patch_org(admin, org, name="changed")
    assert_jsonapi(changed, 200)
    current = changed.headers["ETag"]
    assert current != stale

    assert_jsonapi(patch_org(admin, org, headers={"If-Match": stale}, name="lost update"), 412)
    assert get_ok(admin, f"/organizations/{org.id}")["data"]["attributes"]["name"] == "changed"

    ok = patch_org(admin, org, headers={"If-Match": current}, name="won")
    assert assert_jsonapi(ok, 200)["data"]["attributes"]["name"] == "won"
    assert ok.headers["ETag"] not in (current, stale)


def test_if_match_guards_delete(admin, factory):
    org = factory.organization()
    stale = admin.get(f"/organizations/{org.id}").headers["ETag"]
    assert_jsonapi(patch_org(admin, org, name="renamed"), 200)
    assert_jsonapi(admin.delete(f"/organizations/{org.id}", headers={"If-Match": stale}), 412)
    get_ok(admin, f"/organizations/{org.id}")
    current = admin.get(f"/organizations/{org.id}").headers["ETag"]
    assert admin.delete(f"/organizations/{org.id}", headers={"If-Match": current}).status_code == 204


# ---------------------------------------------------------------- rendering

def test_timestamps_ids_and_no_secrets(admin, factory, admin_account):
    from datetime import datetime, timezone
    account, _, _ = _account_with_person(factory)
    expiring = factory.account(expires_at=datetime(2030, 1, 31, 12, 0, 0, 123456, tzinfo=timezone.utc))
    responses = [
        admin.get("/accounts", {"included": "person,organization,roles.account"}),
        admin.get(f"/accounts/{account.id}"),
        admin.get(f"/accounts/{account.id}/person", {"included": "account"}),
        admin.get("/people", {"included": "account"}),
    ]
    for response in responses:
        text = response.get_data(as_text=True)
        assert PASSWORD_HASH not in text and "password_hash" not in text and "$argon2" not in text
        body = assert_jsonapi(response, 200)
        items = body["data"] if isinstance(body["data"], list) else [body["data"]]
        for item in items + body.get("included", []):
            assert isinstance(item["id"], str) and item["id"].isdigit()
            assert "id" not in item["attributes"] and "type" not in item["attributes"]
            for name in ("created_at", "updated_at"):
                assert TIMESTAMP.match(item["attributes"][name]), item["attributes"][name]
    rendered = get_ok(admin, f"/accounts/{expiring.id}")["data"]["attributes"]
    assert rendered["expires_at"] == "2030-01-31T12:00:00.123456Z"


def test_rendered_timestamp_finds_its_record(admin, factory):
    org = factory.organization()
    factory.organization()
    created_at = get_ok(admin, f"/organizations/{org.id}")["data"]["attributes"]["created_at"]
    assert TIMESTAMP.match(created_at)
    body = get_ok(admin, "/organizations", {"filter[created_at]": created_at})
    assert id_list(body) == [str(org.id)]


@pytest.mark.parametrize("params", [
    {"fields[accounts]": "password_hash"},
    {"fields[accounts]": "password"},
    {"filter[password_hash]": PASSWORD_HASH},
    {"sort": "password_hash"},
])
def test_secrets_cannot_be_asked_for(admin, params):
    response = admin.get("/accounts", params)
    assert PASSWORD_HASH not in response.get_data(as_text=True)
    assert_jsonapi(response, 400)


def test_row_reached_by_two_include_paths_keeps_the_deeper_linkage(admin, factory):
    """A unit reached as account.person.organizational_unit and as organizational_unit.children
    is rendered once, and its children linkage (asked for by one path only) is kept."""
    org = factory.organization()
    unit = factory.unit(org, "sales")
    child = factory.unit(org, "emea", parent=unit)
    person = factory.person(org, first_name="Ada", organizational_unit_id=unit.id)
    factory.account(email="ada@example.com", person_id=person.id, organization_id=org.id)
    body = get_ok(admin, f"/people/{person.id}",
                  {"included": "account.person.organizational_unit,organizational_unit.children"})
    units = [item for item in body["included"] if item["type"] == "organizational_units"]
    assert sorted(u["id"] for u in units) == sorted([str(unit.id), str(child.id)])
    rendered = next(u for u in units if u["id"] == str(unit.id))
    assert rendered["relationships"]["children"]["data"] == [{"type": "organizational_units", "id": str(child.id)}]


def test_links_are_uri_references_even_for_non_ascii_parameters(admin):
    """JSON:API links are URIs: a filter value like "é" is percent-encoded in every link."""
    body = assert_jsonapi(admin.get("/accounts", {"filter[email__match]": "é", "count": "true"}), 200)
    for name in ("self", "first", "last"):
        assert body["links"][name].isascii(), body["links"]
    assert "%C3%A9" in body["links"]["self"]
    cursor = assert_jsonapi(admin.get("/accounts", {"filter[email__match]": "é", "page[after]": ""}), 200)
    assert cursor["links"]["self"].isascii() and cursor["links"]["first"].isascii(), cursor["links"]


@pytest.mark.parametrize("resource, key", [("accounts", "search"), ("people", "search"),
                                           ("organizations", "search"), ("accounts", "password_reset_token")])
def test_null_is_an_ordinary_value_for_a_filter_without_a_column(admin, factory, resource, key):
    """`null` means IS NULL only on a column that can be null; these filters used to get None (a 500)."""
    factory.organization(name="null and void", slug="null-and-void")
    body = get_ok(admin, f"/{resource}", {f"filter[{key}]": "null"})
    assert names(body) == (["null and void"] if resource == "organizations" else [])


@pytest.mark.parametrize("resource, key", [("accounts", "id"), ("accounts", "enabled"),
                                           ("account_roles", "with_scopes"), ("account_roles", "with_projects"),
                                           ("organizational_units", "root_only")])
def test_null_for_a_filter_that_cannot_be_null_is_a_400(admin, resource, key):
    error = assert_jsonapi(admin.get(f"/{resource}", {f"filter[{key}]": "null"}), 400)["errors"][0]
    assert error["code"] == "invalid_value" and error["source"] == {"parameter": f"filter[{key}]"}
