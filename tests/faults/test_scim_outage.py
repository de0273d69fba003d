"""PostgreSQL unreachable while an identity provider provisions: /scim/v2 answers SCIM's error
body with 503 and Retry-After: 1 (never a 500, never a JSON:API document, no rate-limit header),
and serves again once the database is back. A key that could not be checked is no refused key: its
503s do not count against the address."""
import requests

from tests.faults.helpers import serving
from tests.scim.conftest import scim_key


def test_scim_answers_503_scim_errors_during_an_outage(pg_proxy, make_app, admin, factory):
    key = scim_key(admin, factory, factory.organization(slug="acme"))
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2, IAM_SCIM_AUTH_RATE_LIMIT="2 per minute")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/scim+json"}
    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@acme.example"}
    with serving(proxied) as url:
        assert requests.get(f"{url}/scim/v2/Users", headers=headers, timeout=10).status_code == 200
        pg_proxy.cut()
        wrong = {**headers, "Authorization": "Bearer iam_not-a-key-of-this-server"}
        for answer in (requests.get(f"{url}/scim/v2/Users", headers=headers, timeout=15),
                       requests.post(f"{url}/scim/v2/Users", json=user, headers=headers, timeout=15),
                       *(requests.get(f"{url}/scim/v2/Users", headers=wrong, timeout=15) for _ in range(3))):
            assert answer.status_code == 503, answer.text[:300]
            assert answer.headers["Content-Type"].startswith("application/scim+json")
            assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert answer.json()["status"] == "503" and answer.headers.get("Retry-After") == "1"
            assert not [name for name in answer.headers if name.lower().startswith("x-ratelimit")]
        pg_proxy.restore()
        assert requests.post(f"{url}/scim/v2/Users", json=user, headers=headers, timeout=15).status_code == 201
        # The three unchecked keys were not counted: the limit of two refusals is still whole.
        for _ in range(2):
            assert requests.get(f"{url}/scim/v2/Users", headers=wrong, timeout=15).status_code == 401
        limited = requests.get(f"{url}/scim/v2/Users", headers=headers, timeout=15)
        assert limited.status_code == 429 and limited.json()["status"] == "429"
        assert int(limited.headers["Retry-After"]) > 1
