"""The JSON:API 1.1 document check itself (tests/jsonapi_document.py and its schema).

Good documents pass and documents breaking the specification fail for the right reason, so
the check cannot silently accept everything; and the hooks really run on the responses of
the IAM app, the engine's app and the live server.
"""
import json

import pytest
import requests
from flask import Flask, Response, jsonify
from werkzeug.test import Client

from tests import jsonapi_document
from tests.jsonapi_document import (
    SCHEMA_PATH, JsonApiDocumentViolation, ValidatingFlaskClient, ValidatingMiddleware,
    assert_document, document_problems, validator,
)

JSONAPI = "application/vnd.api+json"
BASE = "http://localhost/api/v3/iam"


def account(id_="1", **extra):
    return {"type": "accounts", "id": id_, "attributes": {"email": f"a{id_}@example.com"},
            "links": {"self": f"{BASE}/accounts/{id_}"}, **extra}


GOOD = {
    "meta only": {"meta": {"count": 0}},
    "null data": {"data": None, "links": {"self": f"{BASE}/accounts/1/person"}, "jsonapi": {"version": "1.1"}},
    "single resource": {"data": {
        "type": "accounts", "id": "7",
        "attributes": {"email": "ada@example.com", "enabled": True, "quota": None, "tags": ["a", {"b": 1}],
                       "preferences": {"free keys: any! / text": {"deep": [1, 2.5, None]}}},
        "relationships": {
            "person": {"links": {"self": f"{BASE}/accounts/7/relationships/person",
                                 "related": f"{BASE}/accounts/7/person"},
                       "data": {"type": "people", "id": "3"}},
            "organization": {"links": {"related": f"{BASE}/accounts/7/organization"}, "data": None},
            "roles": {"data": []},
            "sessions": {"meta": {"count": 2}},
        },
        "links": {"self": f"{BASE}/accounts/7"},
        "meta": {"version": 3},
    }},
    "collection with pagination": {
        "data": [account("1"), account("2")],
        "links": {"self": f"{BASE}/accounts?filter%5Bemail__match%5D=%C3%A9&page%5Bsize%5D=2",
                  "first": f"{BASE}/accounts?page%5Bnumber%5D=1&page%5Bsize%5D=2",
                  "prev": None, "next": f"{BASE}/accounts?page%5Bnumber%5D=2&page%5Bsize%5D=2",
                  "last": {"href": f"{BASE}/accounts?page%5Bnumber%5D=9", "title": "last", "hreflang": ["en", "de"],
                           "meta": {"pages": 9}},
                  "describedby": {"href": "/api/v3/iam/openapi.json", "type": "application/vnd.oai.openapi+json"}},
        "meta": {"count": 18},
        "jsonapi": {"version": "1.1", "ext": ["https://jsonapi.org/ext/atomic"],
                    "profile": ["https://example.com/profiles/x"], "meta": {"build": "1"}},
    },
    "compound document": {
        "data": [account("1", relationships={"person": {"data": {"type": "people", "id": "3"}}})],
        "included": [{"type": "people", "id": "3", "attributes": {"first_name": "Ada"},
                      "relationships": {"organization": {"data": {"type": "organizations", "id": "9"}}}},
                     {"type": "organizations", "id": "9"}],
    },
    "relationship linkage": {
        "data": [{"type": "account_roles", "id": "5", "meta": {"since": "2026"}}],
        "links": {"self": f"{BASE}/accounts/1/relationships/roles", "related": f"{BASE}/accounts/1/roles"},
    },
    "error with every member": {"errors": [{
        "id": "e-1", "links": {"about": "https://example.com/errors/1", "type": "https://example.com/types/x"},
        "status": "422", "code": "invalid_value", "title": "Invalid attribute", "detail": "Must be short.",
        "source": {"pointer": "/data/attributes/a~1b~0c", "parameter": "filter[x]", "header": "If-Match"},
        "meta": {"limit": 10},
    }], "jsonapi": {"version": "1.1"}},
    "error pointing at the whole body": {"errors": [{"status": "400", "source": {"pointer": ""}}]},
    "empty errors member": {"errors": []},
    "extension and @-members": {"atomic:results": [], "@context": "https://schema.org",
                                "meta": {"ns:extra": 1, "@note": "x"}},
    "only an extension member": {"atomic:results": [{"data": None}]},
    "IP-literal host": {"data": None, "links": {"self": "http://[::1]:5000/api/v3/iam/x?q=1#top"}},
    "member names with inner space, hyphen, underscore, non-ASCII": {"data": {
        "type": "organizational_units", "id": "1",
        "attributes": {"first name": 1, "x-y": 2, "snake_case": 3, "prénom": 4, "名前": 5}}},
}

# id -> (document, the JSON path the first complaint must be about)
BAD = {
    "data and errors together": ({"data": None, "errors": []}, "$"),
    "id is an integer": ({"data": {"type": "accounts", "id": 1}}, "$.data.id"),
    "type is an integer": ({"data": {"type": 7, "id": "1"}}, "$.data.type"),
    "type is not a member name": ({"data": {"type": "iam/accounts", "id": "1"}}, "$.data.type"),
    "id missing": ({"data": {"type": "accounts"}}, "$.data"),
    "data is a string": ({"data": "accounts"}, "$.data"),
    "root is an array": ([{"data": None}], "$"),
    "error status is an integer": ({"errors": [{"status": 404}]}, "$.errors[0].status"),
    "error status is not an HTTP status": ({"errors": [{"status": "not found"}]}, "$.errors[0].status"),
    "error code is an integer": ({"errors": [{"status": "400", "code": 17}]}, "$.errors[0].code"),
    "error with an unknown member": ({"errors": [{"status": "400", "message": "x"}]}, "$.errors[0]"),
    "error pointer is not a JSON pointer": ({"errors": [{"source": {"pointer": "data/attributes"}}]},
                                            "$.errors[0].source.pointer"),
    "error pointer with an unescaped ~": ({"errors": [{"source": {"pointer": "/data/attributes/~"}}]},
                                          "$.errors[0].source.pointer"),
    "error header is not a header name": ({"errors": [{"source": {"header": "If Match"}}]},
                                          "$.errors[0].source.header"),
    "error source with an unknown member": ({"errors": [{"source": {"field": "email"}}]}, "$.errors[0].source"),
    "error links with an unknown member": ({"errors": [{"links": {"self": "/x"}}]}, "$.errors[0].links"),
    "attributes contain id": ({"data": {"type": "a", "id": "1", "attributes": {"id": "1"}}}, "$.data.attributes"),
    "attributes contain type": ({"data": {"type": "a", "id": "1", "attributes": {"type": "a"}}}, "$.data.attributes"),
    "attributes contain relationships": ({"data": {"type": "a", "id": "1", "attributes": {"relationships": {}}}},
                                         "$.data.attributes"),
    "attributes contain links": ({"data": {"type": "a", "id": "1", "attributes": {"links": {}}}},
                                 "$.data.attributes"),
    "an attribute value holds a links member": (
        {"data": {"type": "a", "id": "1", "attributes": {"x": [{"y": {"links": 1}}]}}}, "$.data.attributes.x[0].y"),
    "attribute name with a reserved character": ({"data": {"type": "a", "id": "1", "attributes": {"a.b": 1}}},
                                                 "$.data.attributes"),
    "attribute name starting with a hyphen": ({"data": {"type": "a", "id": "1", "attributes": {"-a": 1}}},
                                              "$.data.attributes"),
    "relationships contain id": ({"data": {"type": "a", "id": "1", "relationships": {"id": {"data": None}}}},
                                 "$.data.relationships"),
    "empty relationship object": ({"data": {"type": "a", "id": "1", "relationships": {"r": {}}}},
                                  "$.data.relationships.r"),
    "relationship links without self or related": (
        {"data": {"type": "a", "id": "1", "relationships": {"r": {"links": {"first": "/x"}}}}},
        "$.data.relationships.r.links"),
    "relationship with an unknown member": (
        {"data": {"type": "a", "id": "1", "relationships": {"r": {"data": None, "count": 1}}}},
        "$.data.relationships.r"),
    "linkage with attributes": (
        {"data": {"type": "a", "id": "1", "relationships": {"r": {"data": {"type": "b", "id": "2",
                                                                          "attributes": {}}}}}},
        "$.data.relationships.r.data"),
    "linkage id is an integer": (
        {"data": {"type": "a", "id": "1", "relationships": {"r": {"data": [{"type": "b", "id": 2}]}}}},
        "$.data.relationships.r.data[0].id"),
    "resource with an unknown member": ({"data": {"type": "a", "id": "1", "name": "x"}}, "$.data"),
    "included without data": ({"meta": {}, "included": []}, "$"),
    "no data, errors or meta": ({"links": {"self": "/x"}, "jsonapi": {"version": "1.1"}}, "$"),
    "unknown top-level member": ({"data": None, "extra": 1}, "$"),
    "extension member without a name": ({"data": None, "ns:": 1}, "$"),
    "link object without href": ({"data": None, "links": {"self": {"title": "me"}}}, "$.links.self"),
    "link with a space": ({"data": None, "links": {"self": "http://h/a b"}}, "$.links.self"),
    "link with raw brackets in its query": ({"data": None, "links": {"next": "http://h/a?page[number]=2"}},
                                            "$.links.next"),
    "link with non-ASCII characters": ({"data": None, "links": {"self": "http://h/a?q=é"}}, "$.links.self"),
    "link with a broken percent escape": ({"data": None, "links": {"self": "http://h/a?q=%zz"}}, "$.links.self"),
    "link is a number": ({"data": None, "links": {"self": 1}}, "$.links.self"),
    "unknown top-level link": ({"data": None, "links": {"up": "/x"}}, "$.links"),
    "resource links with a pagination link": ({"data": {"type": "a", "id": "1", "links": {"next": "/x"}}},
                                              "$.data.links"),
    "jsonapi version is a number": ({"meta": {}, "jsonapi": {"version": 1.1}}, "$.jsonapi.version"),
    "jsonapi with an unknown member": ({"meta": {}, "jsonapi": {"server": "iam"}}, "$.jsonapi"),
    "meta is an array": ({"meta": []}, "$.meta"),
    "meta member name with a reserved character": ({"meta": {"a+b": 1}}, "$.meta"),
    "a resource twice in included": ({"data": [account("1", relationships={"p": {"data": [
        {"type": "people", "id": "3"}]}})], "included": [{"type": "people", "id": "3"},
                                                         {"type": "people", "id": "3"}]}, "$.included[1]"),
    "primary data repeated in included": ({"data": account("1"), "included": [account("1")]}, "$.included[0]"),
    "included resource nothing links to": ({"data": account("1"), "included": [{"type": "people", "id": "3"}]},
                                           "$.included[0]"),
    "a field both attribute and relationship": (
        {"data": {"type": "a", "id": "1", "attributes": {"owner": 1}, "relationships": {"owner": {"data": None}}}},
        "$.data"),
}


def test_schema_is_valid_draft_2020_12_written_for_this_project():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "JSON:API 1.1 specification" in schema["$comment"] and "this project" in schema["$comment"]
    validator().check_schema(schema)


@pytest.mark.parametrize("document", GOOD.values(), ids=GOOD.keys())
def test_conforming_documents_pass(document):
    assert document_problems(document) == []


@pytest.mark.parametrize(("document", "path"), BAD.values(), ids=BAD.keys())
def test_documents_breaking_the_specification_fail_for_the_right_reason(document, path):
    problems = document_problems(document)
    assert problems, "accepted"
    assert path in [problem.split(": ", 1)[0] for problem in problems], problems
    with pytest.raises(JsonApiDocumentViolation, match="is not a JSON:API 1.1 document"):
        assert_document(document)


def test_full_linkage_is_not_required_under_sparse_fieldsets():
    """The one exception the specification makes: fields[...] may drop the linkage."""
    document = {"data": account("1"), "included": [{"type": "people", "id": "3"}]}
    assert document_problems(document)
    assert document_problems(document, query="fields%5Baccounts%5D=email&include=person") == []


def test_a_violation_names_the_request_the_problem_and_the_document():
    with pytest.raises(JsonApiDocumentViolation) as raised:
        jsonapi_document.check_response("GET", "/api/v3/iam/accounts", "page%5Bsize%5D=1", 200, JSONAPI,
                                        b'{"data": {"type": "accounts", "id": 1}}')
    message = str(raised.value)
    assert message.startswith("GET /api/v3/iam/accounts?page%5Bsize%5D=1 -> 200 (application/vnd.api+json)")
    assert "$.data.id: 1 is not of type 'string'" in message
    assert '"type": "accounts"' in message  # the document itself


# ------------------------------------------------------------------ the hooks are active

def probe_app():
    """A throwaway app answering whatever the test asks, to route documents through the hooks."""
    app = Flask("probe")

    @app.get("/engine/bad")
    def bad():
        return Response('{"data": {"type": "widgets", "id": 1}}', mimetype=JSONAPI)

    @app.get("/engine/not-json")
    def not_json():
        return Response("<html>", mimetype=JSONAPI)

    @app.get("/api/v3/iam/plain-json-document")
    def plain_json_document():
        return jsonify({"data": None})

    @app.get("/api/v3/iam/other-json")
    def other_json():
        return jsonify({"openapi": "3.1.0"})

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "data": "not a document here"})

    @app.get("/engine/empty")
    def empty():
        return Response(status=204, mimetype=JSONAPI)

    return app


def test_every_flask_app_gets_the_checking_test_client(app):
    assert isinstance(app.test_client(), ValidatingFlaskClient)
    assert isinstance(Flask("any").test_client(), ValidatingFlaskClient)


def test_a_malformed_document_fails_the_request_that_got_it():
    client = probe_app().test_client()
    with pytest.raises(JsonApiDocumentViolation, match=r"GET /engine/bad -> 200[\s\S]*\$\.data\.id"):
        client.get("/engine/bad")
    with pytest.raises(JsonApiDocumentViolation, match="the body is not JSON"):
        client.get("/engine/not-json")
    with pytest.raises(JsonApiDocumentViolation, match="a JSON:API document served as application/json"):
        client.get("/api/v3/iam/plain-json-document")
    # Not documents: other JSON under the API, JSON elsewhere, empty bodies.
    assert client.get("/api/v3/iam/other-json").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/engine/empty").status_code == 204


@pytest.fixture
def checked_documents(monkeypatch):
    """The documents the hooks check during the test, in order."""
    seen = []
    original = jsonapi_document.assert_document

    def spy(document, *args, **kwargs):
        seen.append(document)
        return original(document, *args, **kwargs)

    monkeypatch.setattr(jsonapi_document, "assert_document", spy)
    return seen


def test_the_iam_apps_responses_are_checked(admin, admin_account, checked_documents):
    admin.get("/accounts")
    admin.get("/accounts/999999")
    assert [doc["data"][0]["id"] for doc in checked_documents[:1]] == [str(admin_account.id)]
    assert checked_documents[1]["errors"][0]["status"] == "404"


def test_the_engine_apps_responses_are_checked(tmp_path, checked_documents):
    from tests.jsonapi.conftest import make_app

    client = make_app(f"sqlite:///{tmp_path}/engine.db").test_client()
    assert isinstance(client, ValidatingFlaskClient)
    assert client.get("/engine/widgets").status_code == 200
    assert checked_documents and checked_documents[0]["data"] == []


def test_the_live_servers_responses_are_checked(live_server, checked_documents):
    answer = requests.get(f"{live_server}/api/v3/iam/accounts", headers={"Accept": JSONAPI}, timeout=10)
    assert answer.status_code == 401
    assert [doc["errors"][0]["code"] for doc in checked_documents] == ["unauthenticated"]


def test_the_live_server_middleware_records_malformed_documents():
    middleware = ValidatingMiddleware(probe_app())
    response = Client(middleware).get("/engine/bad")
    assert response.status_code == 200 and response.get_data() == b'{"data": {"type": "widgets", "id": 1}}'
    assert len(middleware.violations) == 1 and "$.data.id" in middleware.violations[0]
    Client(middleware).get("/engine/empty")
    assert len(middleware.violations) == 1


# ------------------------------------------------------------------ the two validators agree

@pytest.mark.parametrize("document", [*GOOD.values(), *(doc for doc, _ in BAD.values())],
                         ids=[*GOOD.keys(), *BAD.keys()])
def test_jsonschema_rs_and_python_jsonschema_agree(document):
    """The fast validator answers the hooks; python-jsonschema explains failures: same verdicts."""
    fast = jsonapi_document.fast_validator()
    if fast is None:
        pytest.skip("jsonschema-rs is not installed: python-jsonschema alone answers")
    assert fast.is_valid(document) == validator().is_valid(document)
