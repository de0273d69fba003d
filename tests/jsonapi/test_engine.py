"""The JSON:API engine over HTTP, on a throwaway application (tests/jsonapi/conftest.py).

Filters per field type, relationship paths, sort, paging, count, include, fields,
relationship endpoints, writes, ETags, errors and media types (API.md sections 0-3).
"""
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.jsonapi.conftest import JSONAPI, PREFIX, WIDGET_ROWS


def doc(response, status):
    """The JSON:API document of a response with this status."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:2000])
    if status in (204, 304):
        assert response.get_data() == b""
        return None
    assert response.mimetype == JSONAPI, response.mimetype
    body = response.get_json()
    if status >= 400:
        assert "data" not in body
        for item in body["errors"]:
            assert item["status"] == str(status)
            assert isinstance(item["code"], str) and item["code"]
    return body


def error(response, status, code=None):
    """The only error object of an error response."""
    body = doc(response, status)
    assert len(body["errors"]) == 1, body
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    return body["errors"][0]


def keys(body, ids):
    """The widget keys (A, B, ...) of a list answer, in answer order."""
    by_id = {str(v): k for k, v in ids.items()}
    return "".join(by_id[item["id"]] for item in body["data"])


def listed(client, widgets, params):
    """The widget keys a list request answers, sorted (order is tested apart)."""
    return "".join(sorted(keys(doc(client.get("/widgets", params), 200), widgets)))


def relative(url):
    parts = urlsplit(url)
    assert parts.path.startswith(PREFIX)
    return parts.path[len(PREFIX):] + ("?" + parts.query if parts.query else "")


def widget_body(type_="widgets", id_=None, relationships=None, **attributes):
    attributes = {"name": "new", "color": "blue", "size": 3, "made_at": "2026-05-01T12:00:00Z", **attributes}
    data = {"type": type_, "attributes": attributes}
    if id_ is not None:
        data["id"] = str(id_)
    if relationships:
        data["relationships"] = relationships
    return {"data": data}


# ---------------------------------------------------------------- filters per field type

SPECS_A = json.dumps({"ok": True, "ports": ["usb", "hdmi"], "dims": {"h": 3, "w": 2}})

FILTERS = [
    # string
    ({"filter[name]": "beta 1000 cotton"}, "B"),
    ({"filter[name__eq]": "beta 1000 cotton"}, "B"),
    ({"filter[nickname__neq]": "ace"}, "BCD"),             # neq keeps NULL rows
    ({"filter[nickname__in]": "ace,zed"}, "AD"),
    ({"filter[nickname__nin]": "ace,zed"}, "BC"),          # nin keeps NULL rows
    ({"filter[name__match]": "COTTON"}, "AB"),
    ({"filter[name__match]": "100%"}, "A"),                # % is literal
    ({"filter[name__match]": "e_c"}, "C"),                 # _ is literal
    ({"filter[name__prefix]": "ALPHA"}, "A"),
    ({"filter[name__prefix]": "_"}, ""),
    ({"filter[name__prefix]": "%"}, ""),
    ({"filter[name__suffix]": "CASE"}, "CD"),
    ({"filter[name__suffix]": "_case"}, "C"),
    ({"filter[nickname__exists]": "true"}, "ACD"),
    ({"filter[nickname__exists]": "false"}, "B"),
    ({"filter[nickname]": "null"}, "B"),
    ({"filter[nickname__neq]": "null"}, "ACD"),
    ({"filter[nickname]": "ace,null"}, "AB"),
    # enum
    ({"filter[color]": "red"}, "AD"),
    ({"filter[color__in]": "green,blue"}, "BC"),
    ({"filter[color__neq]": "red"}, "BC"),
    ({"filter[color__nin]": "red,green"}, "C"),
    ({"filter[color__exists]": "true"}, "ABCD"),
    # integer
    ({"filter[size]": "0"}, "B"),
    ({"filter[size__in]": "-5,7"}, "AC"),
    ({"filter[size__in][]": ["-5", "7"]}, "AC"),
    ({"filter[size__neq]": "0"}, "ACD"),
    ({"filter[size__lt]": "0"}, "A"),
    ({"filter[size__lte]": "0"}, "AB"),
    ({"filter[size__gt]": "0"}, "CD"),
    ({"filter[size__gte]": "7"}, "CD"),
    ({"filter[size]": str(2 ** 31 - 1)}, "D"),
    ({"filter[size__gte]": str(-2 ** 31)}, "ABCD"),
    # boolean
    ({"filter[active]": "true"}, "AC"),
    ({"filter[active]": "1"}, "AC"),
    ({"filter[active]": "false"}, "BD"),
    ({"filter[active]": "0"}, "BD"),
    ({"filter[active__neq]": "true"}, "BD"),
    # datetime
    ({"filter[made_at__gt]": "2026-01-01T11:00:00Z"}, "BC"),
    ({"filter[made_at__gt]": "2026-01-01T13:00:00+02:00"}, "BC"),
    ({"filter[made_at__lt]": "2026-01-01T13:00:00+02:00"}, "AD"),
    ({"filter[made_at__lt]": "2026-01-01T11:00:00"}, "AD"),               # no offset: UTC
    ({"filter[made_at__lte]": "2026-01-01T12:00:00.123456"}, "ABD"),
    ({"filter[made_at__lt]": "2026-01-01T12:00:00.123456Z"}, "AD"),
    ({"filter[made_at]": "2026-01-01T12:00:00.123456Z"}, "B"),
    ({"filter[made_at]": "2026-01-01T14:00:00.123456+02:00"}, "B"),
    ({"filter[made_at__in]": "2026-01-01T10:00:00Z,2026-01-02T00:00:00Z"}, "AC"),
    ({"filter[made_at__gte]": "2026-01-02"}, "C"),                        # bare date: midnight UTC
    ({"filter[made_at__lt]": "2026-01-01"}, "D"),
    ({"filter[made_at__neq]": "2026-01-02T00:00:00Z"}, "ABD"),
    # date
    ({"filter[due_on]": "2026-03-15"}, "B"),
    ({"filter[due_on__lt]": "2026-03-01"}, "D"),
    ({"filter[due_on__lte]": "2026-03-01"}, "AD"),
    ({"filter[due_on__gt]": "2026-03-01"}, "B"),
    ({"filter[due_on__gte]": "2026-03-01"}, "AB"),
    ({"filter[due_on__in]": "2026-02-28,2026-03-15"}, "BD"),
    ({"filter[due_on]": "null"}, "C"),
    ({"filter[due_on__neq]": "2026-03-15"}, "ACD"),
    ({"filter[due_on__exists]": "false"}, "C"),
    # JSON object
    ({"filter[specs]": SPECS_A}, "A"),                                    # key order irrelevant
    ({"filter[specs]": '{"dims": {"w": 2}}'}, ""),                        # eq is the whole object
    ({"filter[specs]": '{"ports": ["usb"], "dims": {"w": 2}}'}, "B"),
    ({"filter[specs]": "{}"}, "C"),
    ({"filter[specs__contains]": '{"dims": {"w": 2}}'}, "AB"),
    ({"filter[specs__contains]": '{"ports": ["hdmi"]}'}, "A"),
    ({"filter[specs__contains]": '{"ports": ["hdmi", "usb"]}'}, "A"),
    ({"filter[specs__contains]": '{"ports": ["usb"], "dims": {"h": 3}}'}, "A"),
    ({"filter[specs__contains]": '{"ok": true}'}, "A"),
    ({"filter[specs__contains]": '{"ok": false}'}, ""),
    ({"filter[specs__contains]": '{"dims": {"w": 2.0}}'}, "AB"),
    ({"filter[specs__contains]": "{}"}, "ABC"),
    ({"filter[specs__exists]": "true"}, "ABC"),
    ({"filter[specs__exists]": "false"}, "D"),
    ({"filter[specs]": "null"}, "D"),
    # JSON array
    ({"filter[tags__contains]": "b"}, "AB"),
    ({"filter[tags__contains]": "a,c"}, "A"),
    ({"filter[tags__contains]": "a,x"}, ""),
    ({"filter[tags__contains][]": ["a, b"]}, "D"),                        # a bracket item is whole
    ({"filter[tags__contains][]": ["a", "b"]}, "A"),
    ({"filter[tags__exists]": "true"}, "ABCD"),
    # several filters are ANDed
    ({"filter[color]": "red", "filter[active]": "false"}, "D"),
    # id
    ({"filter[id__in]": "<A>,<C>"}, "AC"),
]


@pytest.mark.parametrize("params,expected", FILTERS, ids=["&".join(f"{k}={v}" for k, v in p.items())
                                                          for p, _ in FILTERS])
def test_filter_operator_selects_the_right_rows(client, widgets, params, expected):
    for key, id_ in widgets.items():
        params = {k: v.replace(f"<{key}>", str(id_)) if isinstance(v, str) else v for k, v in params.items()}
    assert listed(client, widgets, params) == expected


BAD_OPERATORS = [
    "filter[name__lt]", "filter[name__contains]", "filter[color__match]", "filter[color__gt]",
    "filter[size__match]", "filter[size__prefix]", "filter[active__match]", "filter[active__in]",
    "filter[active__gt]", "filter[made_at__match]", "filter[made_at__contains]", "filter[due_on__suffix]",
    "filter[specs__lt]", "filter[specs__in]", "filter[specs__neq]", "filter[specs__match]",
    "filter[tags__eq]", "filter[tags__match]", "filter[tags__in]", "filter[id__match]",
]


@pytest.mark.parametrize("parameter", BAD_OPERATORS)
def test_operator_that_does_not_fit_the_type_is_400_naming_the_parameter(client, parameter):
    err = error(client.get("/widgets", {parameter: "1"}), 400, "invalid_filter")
    assert err["source"] == {"parameter": parameter}


BAD_VALUES = [
    ("filter[color]", "purple"),
    ("filter[color__in]", "red,purple"),
    ("filter[size]", str(2 ** 31)),
    ("filter[size__gt]", str(-2 ** 31 - 1)),
    ("filter[size]", "1.5"),
    ("filter[size]", "abc"),
    ("filter[size__in]", "1,x"),
    ("filter[active]", "yes"),
    ("filter[active]", "2"),
    ("filter[made_at__gte]", "yesterday"),
    ("filter[made_at]", "2026-13-01T00:00:00Z"),
    ("filter[due_on]", "2026-02-30"),
    ("filter[due_on]", "2026-03-01T00:00:00Z"),
    ("filter[specs]", "[1]"),
    ("filter[specs]", "not json"),
    ("filter[specs__contains]", '"usb"'),
    ("filter[specs__contains]", "NaN"),
    ("filter[nickname__exists]", "maybe"),
    ("filter[id]", "abc"),
]


@pytest.mark.parametrize("parameter,value", BAD_VALUES, ids=[f"{p}={v}" for p, v in BAD_VALUES])
def test_value_that_does_not_parse_is_400_naming_the_parameter(client, parameter, value):
    err = error(client.get("/widgets", {parameter: value}), 400, "invalid_value")
    assert err["source"] == {"parameter": parameter}


def test_value_error_in_bracket_list_names_the_bracket_parameter(client):
    err = error(client.get("/widgets", {"filter[size__in][]": ["1", "x"]}), 400)
    assert err["source"] == {"parameter": "filter[size__in][]"}


@pytest.mark.parametrize("parameter", ["filter[nosuch]", "filter[name__nosuch]", "filter[nosuch.name]",
                                       "filter[parts.nosuch]", "filter[name.label]"])
def test_undeclared_filter_or_path_is_400_naming_the_parameter(client, parameter):
    err = error(client.get("/widgets", {parameter: "x"}), 400, "invalid_filter")
    assert err["source"] == {"parameter": parameter}


def test_rendered_timestamp_used_as_filter_finds_its_row(client, widgets):
    rendered = doc(client.get(f"/widgets/{widgets['B']}"), 200)["data"]["attributes"]["made_at"]
    assert rendered == "2026-01-01T12:00:00.123456Z"
    assert listed(client, widgets, {"filter[made_at]": rendered}) == "B"


def test_json_object_stored_as_null_counts_as_null(client, widgets):
    """A widget written with `specs: null` renders null, so `null` and `exists` must treat it so."""
    created = doc(client.post("/widgets", widget_body(name="nulled", specs=None)), 201)["data"]
    assert created["attributes"]["specs"] is None
    new = created["id"]
    found = lambda params: {item["id"] for item in doc(client.get("/widgets", params), 200)["data"]}  # noqa: E731
    assert new in found({"filter[specs__exists]": "false"})
    assert new in found({"filter[specs]": "null"})
    assert new not in found({"filter[specs__exists]": "true"})


# ---------------------------------------------------------------- filters through relationships

@pytest.fixture
def parts(seed, widgets):
    """A has p1 and p2, B has p3, p4 has no widget: label -> id."""
    return {"p1": seed.part("p1", widgets["A"]), "p2": seed.part("p2", widgets["A"]),
            "p3": seed.part("p3", widgets["B"]), "p4": seed.part("p4")}


def labels(body):
    return sorted(item["attributes"]["label"] for item in body["data"])


def test_filter_through_to_one_relationship(client, parts):
    body = doc(client.get("/parts", {"filter[widget.name__match]": "ALPHA"}), 200)
    assert labels(body) == ["p1", "p2"]


def test_filter_through_to_one_relationship_on_integer(client, parts):
    body = doc(client.get("/parts", {"filter[widget.size__gte]": "0"}), 200)
    assert labels(body) == ["p3"]


def test_filter_through_to_many_relationship(client, widgets, parts):
    assert listed(client, widgets, {"filter[parts.label]": "p3"}) == "B"


def test_filter_through_to_many_relationship_lists_each_row_once(client, widgets, parts):
    body = doc(client.get("/widgets", {"filter[parts.label__prefix]": "P", "count": "true"}), 200)
    assert keys(body, widgets) == "AB"
    assert body["meta"]["count"] == 2


def test_filter_through_two_hops(client, parts):
    body = doc(client.get("/parts", {"filter[widget.parts.label]": "p2"}), 200)
    assert labels(body) == ["p1", "p2"]


# ---------------------------------------------------------------- sort

SORTS = [
    ("name", "ABDC"),
    ("-name", "CDBA"),
    ("color,name", "CBAD"),          # enum sorts by its text
    ("size", "ABCD"),
    ("-size", "DCBA"),
    ("active", "BDAC"),              # false first; ties by id
    ("-active", "ACBD"),             # ties stay by id ascending
    ("made_at", "DABC"),
    ("-made_at", "CBAD"),
    ("due_on", "DABC"),              # NULL last ascending
    ("-due_on", "CBAD"),             # NULL first descending
    ("nickname", "ACDB"),
    ("-nickname", "BDCA"),
    ("active,-size", "DBCA"),
    ("-active,due_on", "ACDB"),
    ("-id", "DCBA"),
    ("id", "ABCD"),
]


@pytest.mark.parametrize("sort,expected", SORTS, ids=[s for s, _ in SORTS])
def test_sort_orders_rows(client, widgets, sort, expected):
    assert keys(doc(client.get("/widgets", {"sort": sort}), 200), widgets) == expected


def test_default_order_is_id_ascending(client, widgets):
    assert keys(doc(client.get("/widgets"), 200), widgets) == "ABCD"


@pytest.mark.parametrize("sort", ["specs", "-tags", "nosuch", "name,name", "name,", "-"])
def test_unsortable_sort_is_400(client, sort):
    err = error(client.get("/widgets", {"sort": sort}), 400, "invalid_sort")
    assert err["source"] == {"parameter": "sort"}


def test_sort_ties_broken_by_id_across_pages(client, seed):
    ids = [seed.widget(name=f"w{i}", color="red") for i in range(5)]
    seen = []
    for number in (1, 2, 3):
        body = doc(client.get("/widgets", {"sort": "color", "page[size]": "2", "page[number]": str(number)}), 200)
        seen += [int(item["id"]) for item in body["data"]]
    assert seen == ids


# ---------------------------------------------------------------- paging, links and count

@pytest.fixture
def five(seed):
    return [seed.widget(name=f"n{i}", size=i) for i in range(1, 6)]


def page_ids(body):
    return [int(item["id"]) for item in body["data"]]


def test_page_number_and_size_select_the_slice(client, five):
    body = doc(client.get("/widgets", {"page[number]": "2", "page[size]": "2"}), 200)
    assert page_ids(body) == five[2:4]


def test_page_links_first_prev_next_keep_other_parameters(client, five):
    body = doc(client.get("/widgets", {"filter[size__gte]": "1", "page[number]": "2", "page[size]": "2"}), 200)
    links = body["links"]
    for name, number in (("first", "1"), ("prev", "1"), ("next", "3")):
        query = parse_qs(urlsplit(links[name]).query)
        assert query == {"filter[size__gte]": ["1"], "page[number]": [number], "page[size]": ["2"]}, name
    assert "last" not in links
    assert urlsplit(links["self"]).path == PREFIX + "/widgets"


def test_following_next_links_visits_every_row_once(client, five):
    url, seen = "/widgets?page[size]=2", []
    while url:
        body = doc(client.get(url), 200)
        seen += page_ids(body)
        url = body["links"]["next"] and relative(body["links"]["next"])
    assert seen == five


def test_first_page_has_no_prev_and_last_page_no_next(client, five):
    first = doc(client.get("/widgets", {"page[size]": "3"}), 200)["links"]
    last = doc(client.get("/widgets", {"page[size]": "3", "page[number]": "2"}), 200)["links"]
    assert first["prev"] is None and first["next"] is not None
    assert last["next"] is None and last["prev"] is not None


def test_page_past_the_end_is_empty(client, five):
    body = doc(client.get("/widgets", {"page[number]": "9", "page[size]": "2"}), 200)
    assert body["data"] == [] and body["links"]["next"] is None


def test_count_is_total_matching_filters_not_page_length(client, five):
    body = doc(client.get("/widgets", {"filter[size__gte]": "2", "page[size]": "3", "count": "true"}), 200)
    assert body["meta"] == {"count": 4}
    assert len(body["data"]) == 3
    assert parse_qs(urlsplit(body["links"]["last"]).query)["page[number]"] == ["2"]


def test_without_count_no_meta_count_and_no_last_link(client, five):
    body = doc(client.get("/widgets", {"count": "false"}), 200)
    assert "count" not in body.get("meta", {})
    assert "last" not in body["links"]


def test_count_of_empty_result_is_zero_and_last_is_page_one(client, five):
    body = doc(client.get("/widgets", {"filter[size]": "99", "count": "1"}), 200)
    assert body["meta"]["count"] == 0 and body["data"] == []
    assert parse_qs(urlsplit(body["links"]["last"]).query)["page[number]"] == ["1"]


@pytest.mark.parametrize("parameter,value", [("page[size]", "1001"), ("page[size]", "0"), ("page[number]", "0"),
                                             ("page[number]", "-1"), ("page[size]", "x"), ("page[number]", "1.5"),
                                             ("page[offset]", "1"), ("count", "maybe")])
def test_bad_paging_is_400_naming_the_parameter(client, parameter, value):
    err = error(client.get("/widgets", {parameter: value}), 400)
    assert err["source"] == {"parameter": parameter}


def test_page_size_1000_is_the_maximum_allowed(client):
    doc(client.get("/widgets", {"page[size]": "1000"}), 200)


def test_unknown_query_parameter_is_400(client):
    err = error(client.get("/widgets", {"colour": "red"}), 400, "unknown_parameter")
    assert err["source"] == {"parameter": "colour"}


# ---------------------------------------------------------------- rendering

def test_resource_object_shape(client, widgets):
    body = doc(client.get(f"/widgets/{widgets['A']}"), 200)
    data = body["data"]
    assert data["type"] == "widgets" and data["id"] == str(widgets["A"])
    assert data["links"]["self"] == f"http://localhost{PREFIX}/widgets/{widgets['A']}"
    assert data["attributes"] == {
        "name": "Alpha 100% Cotton", "nickname": "ace", "color": "red", "size": -5, "active": True,
        "made_at": "2026-01-01T10:00:00.000000Z", "due_on": "2026-03-01",
        "specs": WIDGET_ROWS["A"]["specs"], "tags": ["a", "b", "c"]}
    assert body["jsonapi"] == {"version": "1.1"}


def test_to_many_relationship_has_links_and_no_data_unless_included(client, widgets):
    rel = doc(client.get(f"/widgets/{widgets['A']}"), 200)["data"]["relationships"]["parts"]
    own = f"http://localhost{PREFIX}/widgets/{widgets['A']}"
    assert rel == {"links": {"self": own + "/relationships/parts", "related": own + "/parts"}}


def test_to_one_relationship_has_linkage_from_its_foreign_key(client, parts, widgets):
    body = doc(client.get("/parts", {"sort": "id"}), 200)
    linkage = {item["attributes"]["label"]: item["relationships"]["widget"]["data"] for item in body["data"]}
    assert linkage == {"p1": {"type": "widgets", "id": str(widgets["A"])},
                       "p2": {"type": "widgets", "id": str(widgets["A"])},
                       "p3": {"type": "widgets", "id": str(widgets["B"])}, "p4": None}


# ---------------------------------------------------------------- include

def test_include_to_many_adds_linkage_and_included(client, widgets, parts):
    body = doc(client.get("/widgets", {"included": "parts", "filter[id__in]": f"{widgets['A']},{widgets['C']}"}),
               200)
    by_id = {item["id"]: item for item in body["data"]}
    a_linkage = by_id[str(widgets["A"])]["relationships"]["parts"]["data"]
    assert sorted(x["id"] for x in a_linkage) == sorted([str(parts["p1"]), str(parts["p2"])])
    assert by_id[str(widgets["C"])]["relationships"]["parts"]["data"] == []
    assert sorted((x["type"], x["attributes"]["label"]) for x in body["included"]) == [("parts", "p1"),
                                                                                     ("parts", "p2")]


def test_include_to_one_is_deduplicated(client, widgets, parts):
    body = doc(client.get("/parts", {"include": "widget"}), 200)
    assert sorted((x["type"], x["id"]) for x in body["included"]) == sorted(
        [("widgets", str(widgets["A"])), ("widgets", str(widgets["B"]))])
    p4 = next(x for x in body["data"] if x["attributes"]["label"] == "p4")
    assert p4["relationships"]["widget"]["data"] is None


def test_include_nested_path_and_primary_not_repeated(client, widgets, parts):
    body = doc(client.get(f"/parts/{parts['p1']}", {"included": "widget.parts"}), 200)
    included = sorted((x["type"], x["id"]) for x in body["included"])
    assert included == [("parts", str(parts["p2"])), ("widgets", str(widgets["A"]))]


def test_include_bracket_list_and_single_resource(client, widgets, parts):
    body = doc(client.get(f"/widgets/{widgets['B']}", {"included[]": ["parts"]}), 200)
    assert [x["attributes"]["label"] for x in body["included"]] == ["p3"]


def test_included_member_present_but_empty_when_nothing_related(client, widgets):
    body = doc(client.get(f"/widgets/{widgets['C']}", {"included": "parts"}), 200)
    assert body["included"] == []


@pytest.mark.parametrize("params,parameter", [({"included": "nosuch"}, "included"),
                                              ({"include": "widget.nosuch"}, "include"),
                                              ({"included": "widget", "include": "widget"}, "include")])
def test_unknown_include_path_is_400(client, params, parameter):
    err = error(client.get("/parts", params), 400)
    assert err["source"] == {"parameter": parameter}


# ---------------------------------------------------------------- sparse fieldsets

def test_fields_keeps_only_named_attributes(client, widgets):
    body = doc(client.get("/widgets", {"fields[widgets]": "name,size"}), 200)
    for item in body["data"]:
        assert set(item["attributes"]) == {"name", "size"}
        assert "relationships" not in item
        assert item["id"] and item["type"] == "widgets"


def test_fields_may_name_relationships(client, widgets):
    item = doc(client.get(f"/widgets/{widgets['A']}", {"fields[widgets][]": ["parts"]}), 200)["data"]
    assert "attributes" not in item
    assert set(item["relationships"]) == {"parts"}


def test_fields_apply_to_included_type_only(client, parts):
    body = doc(client.get("/parts", {"included": "widget", "fields[widgets]": "color"}), 200)
    assert all(set(x["attributes"]) == {"color"} for x in body["included"])
    assert all(set(x["attributes"]) == {"label", "widget_id"} for x in body["data"])


def test_fields_accepts_type_alias(client, widgets):
    item = doc(client.get(f"/widgets/{widgets['A']}", {"fields[engine/widgets]": "color"}), 200)["data"]
    assert item["attributes"] == {"color": "red"}


@pytest.mark.parametrize("parameter,value", [("fields[widgets]", "nosuch"), ("fields[nosuch]", "name")])
def test_unknown_fieldset_is_400(client, parameter, value):
    err = error(client.get("/widgets", {parameter: value}), 400, "invalid_fields")
    assert err["source"] == {"parameter": parameter}


# ---------------------------------------------------------------- relationship endpoints

def test_related_to_many_is_a_filterable_collection(client, widgets, parts):
    body = doc(client.get(f"/widgets/{widgets['A']}/parts"), 200)
    assert labels(body) == ["p1", "p2"]
    body = doc(client.get(f"/widgets/{widgets['A']}/parts", {"filter[label]": "p2", "count": "true"}), 200)
    assert labels(body) == ["p2"] and body["meta"]["count"] == 1


def test_related_to_one_is_the_resource_or_null(client, widgets, parts):
    body = doc(client.get(f"/parts/{parts['p1']}/widget"), 200)
    assert body["data"]["type"] == "widgets" and body["data"]["id"] == str(widgets["A"])
    assert doc(client.get(f"/parts/{parts['p4']}/widget"), 200)["data"] is None


def test_relationship_linkage_to_many(client, widgets, parts):
    body = doc(client.get(f"/widgets/{widgets['A']}/relationships/parts"), 200)
    assert sorted(body["data"], key=lambda x: int(x["id"])) == [
        {"type": "parts", "id": str(parts["p1"])}, {"type": "parts", "id": str(parts["p2"])}]
    assert body["links"]["related"] == f"http://localhost{PREFIX}/widgets/{widgets['A']}/parts"


def test_relationship_linkage_to_one(client, widgets, parts):
    body = doc(client.get(f"/parts/{parts['p3']}/relationships/widget"), 200)
    assert body["data"] == {"type": "widgets", "id": str(widgets["B"])}
    assert doc(client.get(f"/parts/{parts['p4']}/relationships/widget"), 200)["data"] is None


def test_relationship_endpoints_of_unknown_id_are_404(client):
    error(client.get("/widgets/999999/parts"), 404, "not_found")
    error(client.get("/parts/999999/relationships/widget"), 404, "not_found")


def test_patch_to_one_relationship_sets_and_clears_it(client, widgets, parts):
    url = f"/parts/{parts['p4']}/relationships/widget"
    doc(client.patch(url, {"data": {"type": "widgets", "id": str(widgets["C"])}}), 204)
    assert doc(client.get(url), 200)["data"] == {"type": "widgets", "id": str(widgets["C"])}
    doc(client.patch(url, {"data": None}), 204)
    assert doc(client.get(url), 200)["data"] is None


def test_patch_to_one_relationship_with_wrong_type_is_409(client, parts):
    url = f"/parts/{parts['p4']}/relationships/widget"
    err = error(client.patch(url, {"data": {"type": "parts", "id": str(parts["p1"])}}), 409, "type_mismatch")
    assert err["source"] == {"pointer": "/data/type"}


def test_patch_to_one_relationship_to_missing_row_is_422(client, parts):
    url = f"/parts/{parts['p4']}/relationships/widget"
    err = error(client.patch(url, {"data": {"type": "widgets", "id": "999999"}}), 422, "not_found")
    assert err["source"] == {"pointer": "/data"}


def test_post_to_a_to_one_relationship_is_405(client, widgets, parts):
    url = f"/parts/{parts['p4']}/relationships/widget"
    response = client.post(url, {"data": {"type": "widgets", "id": str(widgets["A"])}})
    error(response, 405)
    assert "PATCH" in response.headers["Allow"]


def test_to_many_relationship_without_a_writer_is_read_only(client, widgets, parts):
    url = f"/widgets/{widgets['C']}/relationships/parts"
    error(client.patch(url, {"data": [{"type": "parts", "id": str(parts["p4"])}]}), 403, "read_only")
    assert doc(client.get(url), 200)["data"] == []


# ---------------------------------------------------------------- create, update, delete

def test_create_is_201_with_location_and_the_stored_resource(client):
    response = client.post("/widgets", widget_body(name="made", made_at="2026-05-01T12:00:00+02:00",
                                                   due_on="2026-06-01", specs={"b": 1, "a": [1, 2]},
                                                   tags=["x", "y"]))
    data = doc(response, 201)["data"]
    assert response.headers["Location"] == f"http://localhost{PREFIX}/widgets/{data['id']}"
    assert data["attributes"] == {"name": "made", "nickname": None, "color": "blue", "size": 3, "active": True,
                                  "made_at": "2026-05-01T10:00:00.000000Z", "due_on": "2026-06-01",
                                  "specs": {"a": [1, 2], "b": 1}, "tags": ["x", "y"]}
    assert doc(client.get(relative(response.headers["Location"])), 200)["data"] == data


def test_create_with_to_one_relationship_sets_the_foreign_key(client, widgets):
    body = {"data": {"type": "parts", "attributes": {"label": "new"},
                     "relationships": {"widget": {"data": {"type": "widgets", "id": str(widgets["B"])}}}}}
    data = doc(client.post("/parts", body), 201)["data"]
    assert data["attributes"]["widget_id"] == widgets["B"]
    assert data["relationships"]["widget"]["data"] == {"type": "widgets", "id": str(widgets["B"])}


def test_create_accepts_type_alias(client):
    doc(client.post("/widgets", widget_body(type_="engine/widgets")), 201)


def test_update_is_200_and_changes_only_what_was_sent(client, widgets):
    body = {"data": {"type": "widgets", "id": str(widgets["A"]), "attributes": {"size": 42, "nickname": None}}}
    response = client.patch(f"/widgets/{widgets['A']}", body)
    attributes = doc(response, 200)["data"]["attributes"]
    assert attributes["size"] == 42 and attributes["nickname"] is None
    assert attributes["name"] == WIDGET_ROWS["A"]["name"] and attributes["tags"] == ["a", "b", "c"]
    assert doc(client.get(f"/widgets/{widgets['A']}"), 200)["data"]["attributes"] == attributes


def test_delete_is_204_and_the_row_is_gone(client, widgets):
    doc(client.delete(f"/widgets/{widgets['C']}"), 204)
    error(client.get(f"/widgets/{widgets['C']}"), 404, "not_found")
    assert listed(client, widgets, {}) == "ABD"


def test_delete_of_a_row_still_referenced_is_409(client, widgets, parts):
    error(client.delete(f"/widgets/{widgets['A']}"), 409, "in_use")
    doc(client.get(f"/widgets/{widgets['A']}"), 200)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_id_is_404(client, method):
    kwargs = {"body": widget_body(id_=999999)} if method == "patch" else {}
    error(getattr(client, method)("/widgets/999999", **kwargs), 404, "not_found")


# ---------------------------------------------------------------- ETag and If-Match

def etag_of(client, id_):
    response = client.get(f"/widgets/{id_}")
    doc(response, 200)
    return response.headers["ETag"]


def size_patch(id_, size):
    return {"data": {"type": "widgets", "id": str(id_), "attributes": {"size": size}}}


def test_etag_changes_on_update(client, widgets):
    before = etag_of(client, widgets["A"])
    response = client.patch(f"/widgets/{widgets['A']}", size_patch(widgets["A"], 5))
    doc(response, 200)
    assert response.headers["ETag"] != before
    assert etag_of(client, widgets["A"]) == response.headers["ETag"]


def test_if_match_current_etag_updates(client, widgets):
    tag = etag_of(client, widgets["A"])
    doc(client.patch(f"/widgets/{widgets['A']}", size_patch(widgets["A"], 5), headers={"If-Match": tag}), 200)


def test_if_match_stale_etag_is_412_and_nothing_changes(client, widgets):
    stale = etag_of(client, widgets["A"])
    doc(client.patch(f"/widgets/{widgets['A']}", size_patch(widgets["A"], 5)), 200)
    response = client.patch(f"/widgets/{widgets['A']}", size_patch(widgets["A"], 6), headers={"If-Match": stale})
    err = error(response, 412, "precondition_failed")
    assert err["source"] == {"header": "If-Match"}
    assert doc(client.get(f"/widgets/{widgets['A']}"), 200)["data"]["attributes"]["size"] == 5


def test_delete_with_stale_if_match_is_412(client, widgets):
    error(client.delete(f"/widgets/{widgets['C']}", headers={"If-Match": '"widgets-0-v9"'}), 412)
    doc(client.get(f"/widgets/{widgets['C']}"), 200)
    doc(client.delete(f"/widgets/{widgets['C']}", headers={"If-Match": etag_of(client, widgets["C"])}), 204)


def test_if_none_match_current_etag_is_304(client, widgets):
    tag = etag_of(client, widgets["B"])
    response = client.get(f"/widgets/{widgets['B']}", headers={"If-None-Match": tag})
    doc(response, 304)
    assert response.headers["ETag"] == tag


# ---------------------------------------------------------------- 409 and 422

def test_create_with_another_type_is_409(client):
    err = error(client.post("/widgets", widget_body(type_="parts")), 409, "type_mismatch")
    assert err["source"] == {"pointer": "/data/type"}


def test_update_with_another_id_is_409(client, widgets):
    err = error(client.patch(f"/widgets/{widgets['A']}", size_patch(widgets["B"], 1)), 409, "id_mismatch")
    assert err["source"] == {"pointer": "/data/id"}


def test_update_with_another_type_is_409(client, widgets):
    body = {"data": {"type": "parts", "id": str(widgets["A"]), "attributes": {}}}
    error(client.patch(f"/widgets/{widgets['A']}", body), 409, "type_mismatch")


def test_create_with_client_id_is_403(client):
    err = error(client.post("/widgets", widget_body(id_=5)), 403)
    assert err["source"] == {"pointer": "/data/id"}


def test_invalid_attributes_are_422_one_error_per_field(client):
    body = {"data": {"type": "widgets", "attributes": {"color": "purple", "size": "big", "active": "yes",
                                                       "due_on": "soon", "tags": "x", "specs": [1]}}}
    errors = doc(client.post("/widgets", body), 422)["errors"]
    pointers = sorted(e["source"]["pointer"] for e in errors)
    assert pointers == sorted(f"/data/attributes/{name}" for name in
                              ("name", "made_at", "color", "size", "active", "due_on", "tags", "specs"))
    assert {e["code"] for e in errors if e["source"]["pointer"].endswith(("/name", "/made_at"))} == {"required"}


@pytest.mark.parametrize("attributes,pointer", [
    ({"size": 2 ** 31}, "/data/attributes/size"),
    ({"size": True}, "/data/attributes/size"),
    ({"name": "x" * 101}, "/data/attributes/name"),
    ({"made_at": "not a time"}, "/data/attributes/made_at"),
    ({"nosuch": 1}, "/data/attributes/nosuch"),
    ({"parts": []}, "/data/attributes/parts"),
])
def test_invalid_attribute_is_422_pointing_at_it(client, attributes, pointer):
    err = error(client.post("/widgets", widget_body(**attributes)), 422)
    assert err["source"] == {"pointer": pointer}


def test_update_with_invalid_attribute_is_422_and_nothing_changes(client, widgets):
    body = {"data": {"type": "widgets", "id": str(widgets["A"]), "attributes": {"size": 5, "color": "pink"}}}
    err = error(client.patch(f"/widgets/{widgets['A']}", body), 422)
    assert err["source"] == {"pointer": "/data/attributes/color"}
    assert doc(client.get(f"/widgets/{widgets['A']}"), 200)["data"]["attributes"]["size"] == -5


def test_relationship_to_missing_row_is_422_pointing_at_it(client):
    body = {"data": {"type": "parts", "attributes": {"label": "x"},
                     "relationships": {"widget": {"data": {"type": "widgets", "id": "999999"}}}}}
    err = error(client.post("/parts", body), 422, "not_found")
    assert err["source"] == {"pointer": "/data/relationships/widget/data"}


def test_read_only_relationship_in_body_is_422(client):
    body = widget_body(relationships={"parts": {"data": []}})
    err = error(client.post("/widgets", body), 422, "read_only")
    assert err["source"] == {"pointer": "/data/relationships/parts"}


@pytest.mark.parametrize("raw,pointer", [
    ('{"data": ', ""),
    ("[]", ""),
    ('{"data": []}', "/data"),
    ('{"data": {"type": 1}}', "/data/type"),
    ('{"data": {"type": "widgets", "attributes": []}}', "/data/attributes"),
    ('{"data": {"type": "widgets", "attributes": {"size": NaN}}}', ""),
])
def test_malformed_body_is_400_with_pointer(client, raw, pointer):
    err = error(client.post("/widgets", raw=raw), 400)
    assert err["source"] == {"pointer": pointer}


# ---------------------------------------------------------------- media types

@pytest.mark.parametrize("content_type", [JSONAPI, "application/json", f'{JSONAPI}; ext=""',
                                          f"{JSONAPI}; profile=\"https://example.com/p\""])
def test_accepted_request_media_types(client, content_type):
    doc(client.post("/widgets", widget_body(), headers={"Content-Type": content_type}), 201)


@pytest.mark.parametrize("content_type", ["text/plain", f"{JSONAPI}; charset=utf-8", "application/xml",
                                          "application/x-www-form-urlencoded",
                                          f'{JSONAPI}; ext="https://example.com/x"'])  # no extension is supported
def test_other_request_media_types_are_415(client, content_type):
    err = error(client.post("/widgets", widget_body(), headers={"Content-Type": content_type}), 415,
                "unsupported_media_type")
    assert err["source"] == {"header": "Content-Type"}


def test_body_without_content_type_is_415(client):
    response = client.client.post(PREFIX + "/widgets", data=json.dumps(widget_body()))
    error(response, 415)


@pytest.mark.parametrize("accept", [f"{JSONAPI}; charset=utf-8", f"{JSONAPI}; charset=utf-8, {JSONAPI}; foo=bar",
                                    f"{JSONAPI}; ext=\"https://x\"", f"{JSONAPI}; ext=\"https://x\", {JSONAPI}; a=b"])
def test_accept_listing_jsonapi_only_with_other_parameters_is_406(client, accept):
    err = error(client.get("/widgets", headers={"Accept": accept}), 406, "not_acceptable")
    assert err["source"] == {"header": "Accept"}


@pytest.mark.parametrize("accept", [JSONAPI, "application/json", "*/*", f"{JSONAPI}; ext=\"https://x\", {JSONAPI}",
                                    f"{JSONAPI}; charset=utf-8, {JSONAPI}", f"{JSONAPI}; charset=utf-8, */*"])
def test_acceptable_accept_headers_answer_jsonapi(client, accept):
    response = client.get("/widgets", headers={"Accept": accept})
    doc(response, 200)
    assert response.headers["Content-Type"] == JSONAPI


def test_errors_outside_the_engine_are_jsonapi_documents_too(client):
    error(client.get("/nosuch"), 404)
    response = client.client.put(PREFIX + "/widgets", headers={"Accept": JSONAPI})
    error(response, 405)
