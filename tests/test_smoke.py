from tests.helpers import assert_jsonapi


def test_admin_lists_accounts(admin):
    body = assert_jsonapi(admin.get("/accounts"), 200)
    assert [a["attributes"]["email"] for a in body["data"]] == ["admin@example.com"]
