"""A real third-party JSON:API client library (jsonapi-client, PyPI) against a live server."""
import pytest
import requests
from jsonapi_client import Filter, Inclusion, Session

from tests.helpers import PASSWORD

# The library creates resources only for types it has a schema for (its own format).
SCHEMA = {"people": {"properties": {
    "first_name": {"type": "string"}, "last_name": {"type": "string"}, "organization_id": {"type": "integer"},
    "organization": {"relation": "to-one", "resource": ["organizations"]},
}}}


@pytest.fixture
def live_url(live_server):
    return f"{live_server}/api/v3/iam"


@pytest.fixture
def session(live_url, admin_account):
    login = requests.post(f"{live_url}/auth/login", json={"email": "admin@example.com", "password": PASSWORD},
                          timeout=10)
    assert login.status_code == 200, login.text
    token = login.json()["meta"]["token"]
    client = Session(live_url, schema=SCHEMA,
                     request_kwargs={"headers": {"Authorization": f"Bearer {token}"}, "timeout": 10})
    yield client
    client.close()


def test_list_with_filters_and_included_then_follow_relationships(session, factory):
    org = factory.organization(name="Acme", slug="acme")
    person = factory.person(org, first_name="Ada", last_name="Lovelace")
    account = factory.account(email="ada@example.com", organization_id=org.id, person_id=person.id, roles=["viewer"])
    factory.account(email="bob@elsewhere.test")

    # Pulse filter names contain "__", which the library's keyword filters would rewrite: send them raw.
    document = session.get("accounts", Filter("filter[email__match]=example.com&filter[role_name]=viewer")
                           + Inclusion("person", "organization", "roles"))
    assert [a.email for a in document.resources] == ["ada@example.com"]
    ada = document.resources[0]
    assert ada.id == str(account.id)
    # Underscored names are read with item access (attribute access would look for "first-name").
    assert ada["person"]["first_name"] == "Ada"        # followed through included
    assert ada["organization"]["slug"] == "acme"
    assert [role["name"] for role in ada["roles"]] == ["viewer"]
    # Following a relationship the server did not include: the client fetches its related link.
    bare = session.get("accounts", account.id).resource
    assert bare["person"]["last_name"] == "Lovelace"


def test_create_and_update_a_person(session, factory):
    org = factory.organization(slug="acme")
    person = session.create("people", fields={"first_name": "Grace", "last_name": "Hopper",
                                              "organization_id": org.id})
    person.commit()
    assert person.id is not None
    fetched = session.get("people", person.id).resource
    assert fetched["first_name"] == "Grace"
    fetched["last_name"] = "Brewster Murray Hopper"
    fetched.commit()
    again = session.get("people", Filter("filter[last_name__match]=brewster")).resources
    assert [p.id for p in again] == [person.id]
