"""The sign-in pages' tests use the OpenID Provider tests' relying party (its redirect URI)."""
from tests.oauth.conftest import relying_party  # noqa: F401 - a fixture, shared
