"""Schemathesis against the app's own OpenAPI document (GET /openapi.json): every operation, as an admin,
on the WSGI app of each test database. Valid and invalid requests alike must get what the document says:
a documented status, the documented media type and headers, a body that fits the documented schema, never
a 5xx; an invalid request a 4xx JSON:API error; a valid one no 400.

One test per operation (`schema.parametrize()`), every phase the pytest plugin runs (the document's
examples, a sample of the coverage phase, fuzzing) with deterministic cases (CONFIG), on fresh rows
(World) that ids in valid paths and bodies point at. Every built-in check of schemathesis runs. No
operation is left out, not even the self-destructive ones: after every successful write the admin gets
a token of a new session (so POST /auth/logout or DELETE /account_sessions/{id} cannot lock the next
case out), and a new admin if the write took its rights away (a DELETE or PATCH that named its id).

What the document cannot say, and how the test copes, is spelled out where it is done: CONFIG (no NUL,
which statuses a valid or an invalid request may get, such as the 414 of a long URI), COVERAGE_STRIDE (why
a sample of the coverage phase), follow_query_rules (rules between query
parameters) and sends_a_valid_query (invalid queries that go out as valid ones).
"""
import json
import os
import time
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, reject, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase

from iam import create_app
from iam.api import api as registry
from iam.extensions import db
from iam.mfa.codes import seal_secret
from iam.jsonapi import filters as ft
from iam.models import (Account, AccountIdentity, ApiKey, AuditEvent, Group, IdentityProvider, IdentityProviderDomain,
                        Invitation, MfaFactor, OAuthClient, Setting, utcnow)
from iam.resources.common import digest
from tests.helpers import API, ApiClient

# What a valid request may get besides success: see "checks" below. 414: the path and query string
# may be at most MAX_URI_LENGTH bytes (iam/jsonapi/query.py), a limit on the whole request that no
# parameter's schema can state (every operation documents the 414); the generators exceed it with
# long or many query parameters, valid or not.
ACCEPTABLE = ["2xx", "3xx", "401", "403", "404", "409", "412", "414", "422", "429", "5xx"]
# What an invalid request may get: schemathesis's defaults, and the 414 above.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429", "5xx"]
# The suite runs a sample, to stay within its time budget; IAM_TEST_SCHEMATHESIS_FULL=1 runs every
# coverage case and 60 fuzzed examples per operation (about 25 minutes per database on 2 cores).
FULL = bool(os.environ.get("IAM_TEST_SCHEMATHESIS_FULL"))

CONFIG = {
    "seed": 20260101,
    "generation": {
        # Valid and invalid requests; a fixed seed and no example database: the same cases every run.
        "mode": "all", "max-examples": 60 if FULL else 8, "deterministic": True, "database": "none",
        # The server refuses NUL in every string (PostgreSQL cannot store it), a 400 the document
        # cannot attach to each string; schemathesis has this switch for exactly that.
        "allow-x00": False,
    },
    "phases": {
        # Every phase the pytest plugin has: the document's examples, coverage (every boundary of every
        # parameter and body member, valid and invalid: ~56,000 cases here, ~2,000 for one list with
        # its ~60 filters) and fuzzing (max-examples above).
        "examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
    },
    "checks": {
        # Valid as far as a schema can tell is not always acceptable: an id must name a row the
        # caller may see, a password must not be common, If-Match must be the current ETag, a unit
        # must stay in its organization... (422 and 412, with a JSON:API error). A 400 stays a failure.
        "positive_data_acceptance": {"expected-statuses": ACCEPTABLE},
        "negative_data_rejection": {"expected-statuses": REJECTIONS},
    },
    "operations": [{
        # A reset or invitation token is a secret no generator can guess: an unknown one is the
        # documented 400 invalid_token (tests/security/test_passwords.py, tests/api/test_invitations.py,
        # tests/security/test_email_change.py).
        "include-path": ["/account/passwords/reset", "/invitations/accept", "/account/email/confirm"],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "400"]}},
    }, {
        # A return_to must lie under the server's IAM_SSO_RETURN_URLS, a setting no schema can carry:
        # any other one is the contract's 400 invalid_return_to (tests/api/test_login_url.py).
        "include-path": ["/auth/login_url", "/auth/sso/start"],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "400"]}},
    }, {
        # The callback needs `code` unless the provider answered `error` (one or the other: a rule
        # the document states in words), a 400 naming the parameter (tests/sso/test_callback.py).
        "include-path": ["/auth/sso/callback"],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "400"]}},
    }],
}


# Of the coverage phase's cases (~56,000 in all; ~2,000 for a list with its ~60 filters), one in
# COVERAGE_STRIDE is sent. Measured on 2 cores (SQLite), ~26 ms a case: every coverage case would take
# ~25 minutes per database; one in 10 with 60 fuzzed examples per operation took 326 s (12,460 cases),
# one in 20 with 20 examples 158 s (SQLite) and 203 s (PostgreSQL): too much of the suite's budget.
COVERAGE_STRIDE = 1 if FULL else 60


class Target:
    """The WSGI app schemathesis calls: it forwards to the `app` of the database under test.

    The operations are collected before any fixture exists, from an app of their own: the document
    depends on no database, so an in-memory one will do (test_the_document_is_the_one_the_app_publishes).
    (schemathesis.pytest.from_fixture would load it from the `app` fixture, but schemathesis 4.32 fails
    there under pytest 9.2, which has no Function._nodeid any more; one test per operation is clearer anyway.)
    """

    def __init__(self):
        self.app = create_app({"TESTING": True, "IAM_ENV": "test", "IAM_DATABASE_URL": "sqlite://"})

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


TARGET = Target()
schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", TARGET, config=schemathesis.Config.from_dict(CONFIG))

# `X_id` attributes in request bodies, and the type of the row they name.
ID_ATTRIBUTES = {"organization_id": "organizations", "organizational_unit_id": "organizational_units",
                 "parent_id": "organizational_units", "person_id": "people", "account_id": "accounts"}
# Filters whose value is a JSON object (a string to the document).
JSON_FILTERS = {f"filter[{flt.name}{'' if op == 'eq' else '__' + op}]"
                for resource in registry.resources.values() for flt in resource.filters.values()
                if isinstance(flt.type, ft.Json) for op in flt.ops if op != "exists"}


def follow_query_rules(query):
    """What a valid query must also do that the document can only say in words."""
    if "include" in query and "included" in query:
        del query["included"]  # one of the two names
    if "page[after]" in query:
        # A cursor is opaque: "" starts a walk, later ones come from links.next; sorted by id only.
        query["page[after]"] = ""
        query.pop("page[number]", None)
        query.pop("sort", None)
    if isinstance(query.get("sort"), str):  # arrays come serialized: "a,-b"
        seen, keys = set(), []
        for key in query["sort"].split(","):
            if key.lstrip("-") not in seen:  # each field once, whichever direction
                seen.add(key.lstrip("-"))
                keys.append(key)
        query["sort"] = ",".join(keys)
    for name in JSON_FILTERS & set(query):
        try:
            valid = isinstance(json.loads(query[name]), dict)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            query[name] = "{}"


def sends_a_valid_query(case):
    """Whether an invalid query goes out as a valid one: a query array that may be empty sent as ""
    (form style cannot tell [] from [""]), or an unknown parameter with no value (None, []: not sent)."""
    documented = {parameter.name: parameter.optimized_schema for parameter in case.operation.query}
    for name, value in case.query.items():
        schema = documented.get(name)
        if schema is None and value in (None, [], {}):
            return True
        if schema is not None and schema.get("type") == "array" and not schema.get("minItems") and value in ("", [""]):
            return True
    return False


class World:
    """A few rows of every type for ids to hit, and an admin that stays one."""

    def __init__(self, app, factory):
        self.app, self.factory = app, factory
        org = factory.organization()
        unit = factory.unit(org)
        person = factory.person(org, organizational_unit_id=unit.id, first_name="Ada", last_name="Lovelace")
        account = factory.account(person_id=person.id, organization_id=org.id)
        role = factory.role(account, "editor", scopes={"organization": [org.id]})
        session_id = factory.session(account)
        self.admin = factory.account(email="admin@example.com", roles=["admin"])
        now = utcnow()
        with app.app_context():
            group = Group(name="editors", organization_id=org.id, roles=[{"name": "editor", "scopes": {}}],
                          members=[db.session.get(Account, account.id)])
            rows = [group, ApiKey(account_id=account.id, name="script", prefix="abcd1234", key_digest=digest("key")),
                    Invitation(email="grace@example.com", organization_id=org.id, token_digest=digest("invitation"),
                               sent_at=now, expires_at=now + timedelta(days=1)),
                    Setting(key="signup.open", value=False),
                    AuditEvent(actor_account_id=self.admin.id, action="login", resource_type="accounts",
                               resource_id=str(self.admin.id))]
            provider = IdentityProvider(organization_id=org.id, name="Acme", issuer="https://idp.acme.example",
                                        client_id="iam", email_domains=["acme.example"],
                                        domains=[IdentityProviderDomain(domain="acme.example")])
            rows.append(provider)
            db.session.add_all(rows)
            db.session.flush()
            identity = AccountIdentity(account_id=account.id, identity_provider_id=provider.id, subject="ada")
            factor = MfaFactor(account_id=account.id, kind="totp", name="Phone", status="pending",
                               secret_sealed=seal_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"))
            client = OAuthClient(organization_id=org.id, name="Reports", client_id="reports-client",
                                 redirect_uris=["https://reports.example.com/cb"], grant_types=["authorization_code"],
                                 scopes=["openid"], secret_digest=digest("client-secret"))
            rows += [identity, factor, client]
            db.session.add_all([identity, factor, client])
            db.session.commit()
            created = {row.__tablename__: row.id for row in rows}
        self.ids = {"organizations": org.id, "organizational_units": unit.id, "people": person.id,
                    "accounts": account.id, "account_roles": role.id, "account_sessions": session_id, **created}
        self.renew()

    def renew(self):
        """A token of a new session of the admin."""
        self.token = self.factory.token(self.admin)

    def aim(self, case):
        """Point a valid (positive) case at the seeded rows, so it gets past "no such resource"."""
        meta = case.meta
        if meta is None:
            return
        if meta.generation.mode != GenerationMode.POSITIVE:
            if meta.is_negative_at(ParameterLocation.QUERY) and sends_a_valid_query(case):
                reject()  # not the invalid request it was meant to be
            return
        if case.path_parameters and "id" in case.path_parameters:
            case.path_parameters["id"] = self.ids[case.operation.path.split("/")[1]]
        if isinstance(case.query, dict):
            follow_query_rules(case.query)
        if isinstance(case.body, dict):
            self._aim_body(case.body)

    def _aim_body(self, node):
        if isinstance(node, list):
            for item in node:
                self._aim_body(item)
        elif isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind in self.ids and isinstance(node.get("id"), str):
                node["id"] = str(self.ids[kind])
            for key, value in node.items():
                if key in ID_ATTRIBUTES and isinstance(value, int) and not isinstance(value, bool):
                    node[key] = self.ids[ID_ATTRIBUTES[key]]
                else:
                    self._aim_body(value)

    def after_write(self):
        """A write may have ended the admin's session (a logout, a password change, a DELETE that named
        it) or its rights (a DELETE or PATCH that named its id, or its role's): a new session, and a
        new admin if need be, for the next case."""
        self.renew()
        if ApiClient(self.app.test_client(), self.token).get("/settings", {"page[size]": 1}).status_code != 200:
            self.admin = self.factory.account(roles=["admin"])
            self.renew()


class Stopwatch:
    """How long the operations of one database took, and how many cases they ran."""

    def __init__(self):
        self.started, self.operations, self.cases = time.monotonic(), 0, 0


@pytest.fixture(scope="module")
def stopwatch(request, database_url):
    watch = Stopwatch()
    yield watch
    if watch.operations:
        database = database_url.partition(":")[0]
        line = (f"schemathesis on {database}: {watch.operations} operations, {watch.cases} cases "
                f"in {time.monotonic() - watch.started:.1f}s")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():  # on the terminal, not in a captured section
            print(f"\n{line}")


@pytest.fixture
def world(app, factory, stopwatch):
    TARGET.app = app
    stopwatch.operations += 1
    world = World(app, factory)
    world.stopwatch, world.coverage_cases = stopwatch, 0
    return world


def test_the_document_is_the_one_the_app_publishes(client):
    assert client.get("/openapi.json").get_json() == schema.raw_schema


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # `world` is meant to last all cases
def test_operation_conforms_to_the_document(case, world):
    # Login, reset and invitation endpoints are throttled per client address: every case starts afresh.
    world.app.extensions["iam_limiter"].reset()
    if case.meta is not None and case.meta.phase.name == TestPhase.COVERAGE:
        # The coverage phase's cases of one operation come in a fixed order, grouped by what they try;
        # every COVERAGE_STRIDE-th of them runs, so every group is sampled evenly (see COVERAGE_STRIDE).
        world.coverage_cases += 1
        if world.coverage_cases % COVERAGE_STRIDE:
            return
    world.stopwatch.cases += 1
    world.aim(case)
    # The admin's token, unless the case is about a missing or wrong one (then the server must say 401).
    credentials = {} if schema.is_security_param_negated(case) else {"Authorization": f"Bearer {world.token}"}
    response = case.call_and_validate(headers=credentials)
    if case.method.upper() != "GET" and response.status_code < 300:
        world.after_write()
