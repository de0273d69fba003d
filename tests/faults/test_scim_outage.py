"""PostgreSQL unreachable while an identity provider provisions: /scim/v2 answers SCIM's error
body with 503 and Retry-After (never a 500, never a JSON:API document), and serves again once
the database is back."""
import requests

from tests.faults.helpers import serving
from tests.scim.conftest import scim_key


def test_scim_answers_503_scim_errors_during_an_outage(pg_proxy, make_app, admin, factory):
    key = scim_key(admin, factory, factory.organization(slug="acme"))
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/scim+json"}
    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@acme.example"}
    with serving(proxied) as url:
        assert requests.get(f"{url}/scim/v2/Users", headers=headers, timeout=10).status_code == 200
        pg_proxy.cut()
        for answer in (requests.get(f"{url}/scim/v2/Users", headers=headers, timeout=15),
                       requests.post(f"{url}/scim/v2/Users", json=user, headers=headers, timeout=15)):
            assert answer.status_code == 503, answer.text[:300]
            assert answer.headers["Content-Type"].startswith("application/scim+json")
            assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert answer.json()["status"] == "503" and answer.headers.get("Retry-After") == "1"
        pg_proxy.restore()
        assert requests.post(f"{url}/scim/v2/Users", json=user, headers=headers, timeout=15).status_code == 201
