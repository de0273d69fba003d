"""PostgreSQL unreachable while applications and people use the OpenID Provider: the token,
introspection, revocation, userinfo and JWKS endpoints answer OAuth's error JSON
(`temporarily_unavailable`, RFC 6749 section 5.2) with 503 and Retry-After, the pages answer a
503 page, never a 500, and everything works again once the database is back."""
import requests

from tests.helpers import assert_jsonapi


def test_the_openid_provider_answers_in_its_own_formats_during_an_outage(pg_proxy, make_app, admin, factory):
    proxied = make_app(pg_proxy.url, IAM_DB_CONNECT_TIMEOUT=2)
    from tests.faults.helpers import serving
    robot = factory.account(email="robot@example.com", account_type="service_account", password=False)
    created = assert_jsonapi(admin.post("/oauth_clients", {"data": {"type": "oauth_clients", "attributes": {
        "name": "Export", "grant_types": ["client_credentials"], "redirect_uris": [], "scopes": [],
        "service_account_id": robot.id}}}), 201)
    credentials = (created["data"]["attributes"]["client_id"], created["meta"]["client_secret"])
    with serving(proxied) as url:
        token = requests.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=credentials,
                              timeout=10)
        assert token.status_code == 200
        pg_proxy.cut()
        calls = {
            "token": requests.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=credentials,
                                   timeout=15),
            "introspect": requests.post(f"{url}/oauth2/introspect", data={"token": token.json()["access_token"]},
                                        auth=credentials, timeout=15),
            "revoke": requests.post(f"{url}/oauth2/revoke", data={"token": token.json()["access_token"]},
                                    auth=credentials, timeout=15),
            "userinfo": requests.get(f"{url}/oauth2/userinfo",
                                     headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=15),
            "jwks": requests.get(f"{url}/oauth2/jwks", timeout=15),
        }
        for name, answer in calls.items():
            assert answer.status_code == 503, (name, answer.status_code, answer.text[:300])
            assert answer.headers["Content-Type"].startswith("application/json"), name
            assert answer.json()["error"] == "temporarily_unavailable", (name, answer.text)
            assert answer.headers.get("Retry-After") == "1", name
        page = requests.get(f"{url}/signin", cookies={"iam_browser": "x" * 43}, timeout=15)
        assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
        assert "Try again in a moment" in page.text and page.headers.get("Retry-After") == "1"
        # Discovery needs no database.
        assert requests.get(f"{url}/.well-known/openid-configuration", timeout=15).status_code == 200
        pg_proxy.restore()
        again = requests.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=credentials,
                              timeout=15)
        assert again.status_code == 200, again.text
