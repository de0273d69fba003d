"""Every JSON:API document the suite receives is checked against JSON:API 1.1.

`tests/jsonapi_document.schema.json` (our own schema, written from the specification's text)
is compiled once; `document_problems` adds the rules JSON Schema cannot express. The yes/no
answer comes from jsonschema-rs when it is installed (a 1000-resource page: ~10 ms, where
python-jsonschema takes ~3 s); python-jsonschema, the reference implementation, explains the
documents that fail. test_jsonapi_document_schema.py checks that both agree.

Two hooks apply it to every response without any test asking:

- `ValidatingFlaskClient`, made the test client class of every Flask app by
  `tests/conftest.py` (`pytest_configure`): a non-conforming response fails the request's
  call in the test with the path, the problems and the document.
- `ValidatingMiddleware`, which the `live_server` fixture serves instead of the bare app: it
  sees every response a real HTTP client gets (requests, jsonapi-client, curl) and the
  fixture fails the test at teardown if any of them did not conform.

A body is checked when its media type is application/vnd.api+json, or when it is a JSON
object with a document's members (data, errors, meta) served under one of DOCUMENT_PREFIXES
under another JSON media type; API.md section 1 requires the JSON:API media type there, so
that is a violation too.
"""
import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match, relevance

JSONAPI = "application/vnd.api+json"
SCHEMA_PATH = Path(__file__).with_name("jsonapi_document.schema.json")
# Paths whose JSON answers are JSON:API documents: the IAM API and the engine's test app.
DOCUMENT_PREFIXES = ("/api/v3/iam", "/engine")
DOCUMENT_MEMBERS = ("data", "errors", "meta")
SHOWN_PROBLEMS = 8
SHOWN_DOCUMENT = 6000


class JsonApiDocumentViolation(AssertionError):
    """A response body that is not a JSON:API 1.1 document (or not served as one)."""


@lru_cache(maxsize=1)
def schema():
    return json.loads(SCHEMA_PATH.read_text())


@lru_cache(maxsize=1)
def validator():
    """The compiled python-jsonschema validator (built once per test process)."""
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


@lru_cache(maxsize=1)
def fast_validator():
    """The compiled jsonschema-rs validator, or None without the package."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.Draft202012Validator(schema())


def conforms_to_schema(document):
    fast = fast_validator()
    return fast.is_valid(document) if fast is not None else validator().is_valid(document)


def _schema_problems(document):
    errors = sorted(validator().iter_errors(document), key=relevance)
    # One line per failing member, each explained by its most relevant nested error.
    return list(dict.fromkeys(_describe(best_match([error])) for error in errors))


def _describe(error):
    schema_path = "/".join(str(p) for p in error.absolute_schema_path)
    message = error.message
    if error.validator == "pattern" and len(error.validator_value) > 60:
        why = error.schema.get("$comment", "")
        message = f"{error.instance!r} does not match the pattern" + (f" ({why[:160]}...)" if why else "")
    return f"{error.json_path}: {message} (schema: {schema_path})"


def _resources(document):
    data = document.get("data")
    primary = data if isinstance(data, list) else ([data] if isinstance(data, dict) else [])
    included = document.get("included") if isinstance(document.get("included"), list) else []
    return primary, included


def _key(item):
    return (item.get("type"), item.get("id"))


def _semantic_problems(document, query):
    """Rules of the specification beyond the schema (run only on schema-valid documents)."""
    problems = []
    primary, included = _resources(document)
    seen = set()
    single = isinstance(document.get("data"), dict)
    for where, items in (("data", primary), ("included", included)):
        for index, item in enumerate(items):
            here = "$.data" if where == "data" and single else f"$.{where}[{index}]"
            key = _key(item)
            if key in seen:
                problems.append(f"{here}: a second resource object for type {key[0]!r} and id "
                                f"{key[1]!r} (a compound document holds each resource once)")
            seen.add(key)
            shared = set(item.get("attributes", {})) & set(item.get("relationships", {}))
            if shared:
                problems.append(f"{here}: {sorted(shared)} named both as attribute and as "
                                "relationship (fields share one namespace)")
    if included and not any(name.startswith("fields[") for name, _ in parse_qsl(query or "")):
        # Full linkage: every included resource is identified somewhere in the document.
        # (Sparse fieldsets may remove the linkage, the one exception the specification makes.)
        linked = {_key(item) for item in primary}
        for item in primary + included:
            for relationship in (item.get("relationships") or {}).values():
                data = relationship.get("data")
                for identifier in data if isinstance(data, list) else [data] if data else []:
                    linked.add(_key(identifier))
        for index, item in enumerate(included):
            if _key(item) not in linked:
                problems.append(f"$.included[{index}]: {item.get('type')} {item.get('id')!r} is identified by "
                                "no resource linkage in the document (full linkage)")
    return problems


def document_problems(document, query=""):
    """What makes `document` not a JSON:API 1.1 response document; [] when it conforms."""
    if not conforms_to_schema(document):
        return _schema_problems(document) or ["$: rejected by jsonschema-rs, accepted by python-jsonschema"]
    return _semantic_problems(document, query) if isinstance(document, dict) else []


def assert_document(document, query="", where="document"):
    problems = document_problems(document, query)
    if problems:
        raise JsonApiDocumentViolation(_message(where, problems, document))


def _message(where, problems, document):
    shown = problems[:SHOWN_PROBLEMS]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    text = document if isinstance(document, str) else json.dumps(document, indent=1, ensure_ascii=False)
    if len(text) > SHOWN_DOCUMENT:
        text = text[:SHOWN_DOCUMENT] + f"\n... ({len(text) - SHOWN_DOCUMENT} more characters)"
    return (f"{where} is not a JSON:API 1.1 document ({SCHEMA_PATH.name}):\n  "
            + "\n  ".join(shown) + more + "\n--- document ---\n" + text)


def _mimetype(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_response(method, path, query, status, content_type, body):
    """Raise JsonApiDocumentViolation when this response's body should be, and is not, a document."""
    mimetype = _mimetype(content_type)
    if not body or not body.strip():
        return
    is_jsonapi = mimetype == JSONAPI
    if not is_jsonapi and not (path.startswith(DOCUMENT_PREFIXES)
                               and (mimetype == "application/json" or mimetype.endswith("+json"))):
        return
    where = f"{method} {path}{'?' + query if query else ''} -> {status} ({mimetype})"
    try:
        document = json.loads(body)
    except ValueError as exc:
        if is_jsonapi:
            raise JsonApiDocumentViolation(f"{where}: the body is not JSON ({exc}):\n{body[:2000]!r}") from None
        return
    if not is_jsonapi:
        if not (isinstance(document, dict) and any(m in document for m in DOCUMENT_MEMBERS)):
            return  # some other JSON (an OpenAPI description, a health check)
        raise JsonApiDocumentViolation(
            f"{where}: a JSON:API document served as {mimetype}; responses carry {JSONAPI} (API.md section 1)")
    assert_document(document, query, where)


class ValidatingFlaskClient(FlaskClient):
    """Flask's test client; every response it returns has been checked by `check_response`."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = getattr(response, "request", None)
        method = request.method if request is not None else "?"
        path = request.path if request is not None else "?"
        query = request.query_string.decode("latin-1") if request is not None else ""
        check_response(method, path, query, response.status_code, response.headers.get("Content-Type"),
                       response.get_data())
        return response


class ValidatingMiddleware:
    """WSGI middleware recording every served response that is not a conforming document.

    Exceptions raised in the server's threads would never reach the test, so problems are
    collected in `violations` for the fixture that serves this to report."""

    def __init__(self, app):
        self.app = app
        self.violations = []

    def __call__(self, environ, start_response):
        answer = {}

        def capture(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return start_response(status, headers, exc_info)

        iterable = self.app(environ, capture)
        try:
            chunks = list(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        content_type = next((v for k, v in answer.get("headers", []) if k.lower() == "content-type"), "")
        try:
            check_response(environ.get("REQUEST_METHOD", "?"), environ.get("SCRIPT_NAME", "") + environ.get(
                "PATH_INFO", ""), environ.get("QUERY_STRING", ""), answer.get("status", "?").split(" ", 1)[0],
                content_type, b"".join(chunks))
        except JsonApiDocumentViolation as violation:
            self.violations.append(str(violation))
        return chunks
