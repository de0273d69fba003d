"""Cursor pagination (page[after]): ops scripts walk a whole collection in id order at constant cost."""
from urllib.parse import unquote, urlsplit

import pytest

from tests.helpers import assert_jsonapi, error_of


def follow(client, url):
    parts = urlsplit(url)
    return assert_jsonapi(client.get(parts.path + "?" + parts.query), 200)


@pytest.fixture
def accounts(factory):
    return [factory.account(email=f"user{n:02d}@{'walk' if n % 3 else 'skip'}.example") for n in range(25)]


def test_a_walk_visits_every_row_once_in_id_order(admin, admin_account, accounts):
    page = assert_jsonapi(admin.get("/accounts", {"page[after]": "", "page[size]": "10", "count": "true"}), 200)
    seen = []
    while True:
        seen.extend(int(item["id"]) for item in page["data"])
        assert page["meta"]["count"] == 26  # everything that matches, wherever the cursor stands
        assert page["links"]["prev"] is None and "last" not in page["links"]
        if page["links"]["next"] is None:
            break
        next_link = unquote(page["links"]["next"])
        assert "page[after]=" in next_link and "page[number]" not in next_link
        page = follow(admin, page["links"]["next"])
    assert seen == sorted([admin_account.id] + [a.id for a in accounts])


def test_a_walk_keeps_its_filters(admin, accounts):
    page = assert_jsonapi(admin.get("/accounts", {"filter[email__match]": "@walk.", "page[after]": "",
                                                  "page[size]": "5"}), 200)
    emails = []
    while True:
        emails.extend(item["attributes"]["email"] for item in page["data"])
        if not page["links"]["next"]:
            break
        page = follow(admin, page["links"]["next"])
    assert emails == [a.email for a in accounts if "@walk." in a.email]


@pytest.mark.parametrize("params", [
    {"page[after]": "bm90LWEtY3Vyc29y"},           # base64 of something that is not a cursor
    {"page[after]": "%%%"},
    {"page[after]": "", "page[number]": "2"},
    {"page[after]": "", "sort": "email"},
    {"page[after]": "", "sort": "-id"},
])
def test_bad_cursor_requests_are_400_naming_page_after(admin, params):
    error = error_of(admin.get("/accounts", params), 400)
    assert error["source"]["parameter"] == "page[after]" and error["code"] == "invalid_page"


def test_sorting_by_id_is_allowed_with_a_cursor(admin, accounts):
    body = assert_jsonapi(admin.get("/accounts", {"page[after]": "", "sort": "id", "page[size]": "3"}), 200)
    assert len(body["data"]) == 3 and body["links"]["next"]


def test_the_cursor_is_documented(client):
    document = client.client.get("/api/v3/iam/openapi.json").get_json()
    assert document["components"]["parameters"]["page.after"]["name"] == "page[after]"
