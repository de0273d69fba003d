"""No 500 from /scim/v2 for anything an identity provider sends: random query parameters, bodies
and PatchOps (known attribute names with values of every JSON type, unknown names, odd paths),
each answered in SCIM's own format (a resource, a list, or an Error with a status below 500)."""
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.scim.conftest import SCIM

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

names = st.sampled_from(["userName", "name", "name.givenName", "displayName", "active", "emails", "externalId",
                         "groups", "members", "id", "meta", "schemas", f"{ENTERPRISE}:manager", f"{ENTERPRISE}",
                         f"{ENTERPRISE}:department", 'emails[type eq "work"].value', 'members[value eq "1"]',
                         "members[", "emails[type eq].value", "name.", "", "x" * 300, "urn:x:y"])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
              st.text(max_size=30), st.sampled_from(["True", "False", "ada@acme.example", "1", "abc", "\u0000"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(names, st.text(max_size=10)),
                                                                         inner, max_size=4)),
    max_leaves=12)
documents = st.dictionaries(st.one_of(names, st.text(max_size=10)), json_values, max_size=6)
operations = st.lists(st.fixed_dictionaries({"op": st.sampled_from(["add", "Remove", "REPLACE", "move", "", 3])},
                                            optional={"path": st.one_of(names, json_values),
                                                      "value": json_values}), max_size=4)
queries = st.dictionaries(st.sampled_from(["filter", "sortBy", "sortOrder", "startIndex", "count", "attributes",
                                           "excludedAttributes"]),
                          st.one_of(st.text(max_size=40), st.sampled_from(
                              ['userName eq "a"', "active eq true", "-1", "0", "99999999999999999999",
                               "descending", "emails.value", 'members[value eq "1"]', "name.givenName"])),
                          max_size=4)


@pytest.fixture
def target(scim):
    """A user and a group to write to."""
    user = scim.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                "userName": "target@acme.example"}).get_json()["id"]
    group = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                  "displayName": "Target", "members": [{"value": user}]}).get_json()["id"]
    return user, group


def _check(answer):
    assert answer.status_code < 500, (answer.status_code, answer.get_data(as_text=True)[:500])
    if answer.status_code != 204:
        assert answer.content_type.startswith(SCIM), answer.content_type
        found = answer.get_json()
        assert isinstance(found, dict) and found.get("schemas"), found
        if answer.status_code >= 400:
            assert found["status"] == str(answer.status_code)


@FUZZ
@given(kind=st.sampled_from(["/Users", "/Groups"]), query=queries)
def test_lists_never_fail(scim, target, kind, query):
    _check(scim.get(kind, query))


@FUZZ
@given(kind=st.sampled_from(["/Users", "/Groups", "/Users/.search", "/.search"]), document=documents)
def test_creations_and_searches_never_fail(scim, target, kind, document):
    _check(scim.post(kind, document))


@FUZZ
@given(which=st.sampled_from([0, 1]), method=st.sampled_from(["PUT", "PATCH"]), document=documents,
       ops=operations)
def test_replacements_and_patches_never_fail(scim, target, which, method, document, ops):
    path = f"/Users/{target[0]}" if which == 0 else f"/Groups/{target[1]}"
    body = document if method == "PUT" else {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                             "Operations": ops}
    _check(scim.send(method, path, body))


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                     st.sampled_from([b"[]", b"null", b"{", b'"x"', json.dumps({"Operations": None}).encode()])))
def test_bodies_that_are_no_json_object_never_fail(scim, target, raw):
    answer = scim.client.post("/scim/v2/Users", data=raw, headers=scim.headers({"Content-Type": SCIM}))
    _check(answer)
