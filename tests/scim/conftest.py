"""Fixtures of the SCIM tests: an organization, a SCIM key made through the API (scopes
{"scim": true}, for a service account of the organization, by an admin), and clients speaking
SCIM to the server: Flask's test client (`scim`) and, for scim2-tester, the server on a socket."""
import json

import pytest

from tests.helpers import assert_jsonapi

SCIM = "application/scim+json"


class ScimClient:
    """Flask's test client with the key, speaking application/scim+json under /scim/v2."""

    def __init__(self, client, key):
        self.client, self.key = client, key

    def headers(self, extra=None):
        return {"Authorization": f"Bearer {self.key}", "Accept": SCIM, **(extra or {})}

    def _url(self, path):
        return path if path.startswith("/scim/v2") else "/scim/v2" + path

    def get(self, path, params=None, headers=None):
        return self.client.get(self._url(path), query_string=params, headers=self.headers(headers))

    def send(self, method, path, body, headers=None):
        return self.client.open(self._url(path), method=method, data=json.dumps(body),
                                headers=self.headers({"Content-Type": SCIM, **(headers or {})}))

    def post(self, path, body, headers=None):
        return self.send("POST", path, body, headers)

    def put(self, path, body, headers=None):
        return self.send("PUT", path, body, headers)

    def patch(self, path, body, headers=None):
        return self.send("PATCH", path, body, headers)

    def delete(self, path, headers=None):
        return self.client.delete(self._url(path), headers=self.headers(headers))


def scim_key(admin, factory, organization):
    """The raw key of a new SCIM key for a service account of `organization`."""
    robot = factory.account(email=f"scim-{organization.slug}@idp.example", organization_id=organization.id,
                            account_type="service_account", password=False)
    created = assert_jsonapi(admin.post("/api_keys", {"data": {"type": "api_keys", "attributes": {
        "name": "Okta provisioning", "account_id": robot.id, "scopes": {"scim": True}}}}), 201)
    return created["meta"]["key"]


@pytest.fixture
def org(factory):
    return factory.organization(slug="acme", name="Acme")


@pytest.fixture
def other_org(factory):
    return factory.organization(slug="globex", name="Globex")


@pytest.fixture
def scim(app, admin, factory, org):
    return ScimClient(app.test_client(), scim_key(admin, factory, org))


@pytest.fixture
def other_scim(app, admin, factory, other_org):
    return ScimClient(app.test_client(), scim_key(admin, factory, other_org))


def body(response, status=None):
    """The SCIM answer's JSON, its status and media type checked."""
    if status is not None:
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:2000])
    if response.status_code != 204:
        assert response.content_type.startswith(SCIM), response.content_type
        return response.get_json()
    return None


def scim_error(response, status, scim_type=None):
    found = body(response, status)
    assert found["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and found["status"] == str(status)
    if scim_type is not None:
        assert found.get("scimType") == scim_type, found
    return found
