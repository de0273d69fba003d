"""No 500 for anything a client sends: random query strings and bodies, always a JSON:API answer."""
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from iam.api import api as registry
from tests.helpers import JSONAPI, assert_jsonapi

RESOURCES = sorted(registry.resources)
OPERATORS = ["eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "match", "prefix", "suffix", "contains",
             "exists", "like", ""]

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
tricky = st.sampled_from(["", "null", "true", "false", "0", "-1", "1,2,3", "99999999999999999999", "1e400",
                          "NaN", "2026-01-31T12:00:00.123456Z", "2026-13-45", "%", "_", "\\", "\x00", "a,b",
                          '{"ou":[1]}', '{"a":', "[1,2]", "ou:12", "ou", "x" * 300, "-id", "email,-created_at",
                          "roles.account", "person.organizational_unit", " ", ",,,"])
values = st.one_of(tricky, text, st.integers(-2**70, 2**70).map(str))


@st.composite
def names(draw, resource):
    known = sorted(registry.resource(resource).filters) + sorted(registry.resource(resource).relationships)
    name = draw(st.one_of(st.sampled_from(known), text))
    if draw(st.booleans()):
        name = draw(st.sampled_from(known)) + "." + name
    op = draw(st.sampled_from(OPERATORS))
    return f"{name}__{op}" if op else name


@st.composite
def query_strings(draw, resource):
    keys = st.one_of(
        names(resource).map(lambda n: f"filter[{n}]"),
        names(resource).map(lambda n: f"filter[{n}][]"),
        st.sampled_from(["sort", "page[number]", "page[size]", "page[after]", "count", "included", "include",
                         "included[]", "fields[accounts]", "fields[iam/people]", "fields[nope]", "fields",
                         "filter", "filter[]", "page", "sort[]"]),
        st.sampled_from(RESOURCES).map(lambda t: f"fields[{t}]"),
        text,
    )
    pairs = draw(st.lists(st.tuples(keys, values), max_size=5))
    return pairs


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**66, 2**66), st.floats(allow_nan=False), text, tricky,
              st.just("\ud800")),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)),
    max_leaves=12,
)


@st.composite
def bodies(draw, resource):
    schema_fields = sorted(registry.resource(resource).schema_class._declared_fields)
    attributes = draw(st.dictionaries(st.one_of(st.sampled_from(schema_fields), text), json_values, max_size=6))
    shape = draw(st.sampled_from(["document", "document", "document", "random", "wrong_type", "relationships"]))
    if shape == "random":
        return draw(json_values)
    data = {"type": resource if shape != "wrong_type" else draw(text), "attributes": attributes}
    if shape == "relationships":
        data["relationships"] = draw(st.dictionaries(
            st.one_of(st.sampled_from(schema_fields), text),
            st.one_of(json_values, st.fixed_dictionaries({"data": json_values})), max_size=3))
    return {"data": data}


@pytest.mark.parametrize("resource", RESOURCES)
def test_random_query_strings_never_fail_the_server(admin, resource):
    @FUZZ
    @given(pairs=query_strings(resource))
    def check(pairs):
        response = admin.client.get(f"/api/v3/iam/{resource}", query_string=pairs, headers=admin.headers())
        assert response.status_code < 500, (pairs, response.get_data(as_text=True))
        assert_jsonapi(response)

    check()


@pytest.mark.parametrize("resource", RESOURCES)
def test_random_bodies_never_fail_the_server(admin, resource):
    @FUZZ
    @given(body=bodies(resource))
    def check(body):
        response = admin.client.post(f"/api/v3/iam/{resource}", data=json.dumps(body),
                                     headers={**admin.headers(), "Content-Type": JSONAPI})
        assert response.status_code < 500, (body, response.get_data(as_text=True))
        assert_jsonapi(response)

    check()
