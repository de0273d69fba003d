"""Fixtures of the second-factor tests."""
import pytest

from tests.helpers import ApiClient


@pytest.fixture
def ada(app, factory):
    account = factory.account(email="ada@example.com")
    client = ApiClient(app.test_client(), factory.token(account))
    client.account = account
    return client
