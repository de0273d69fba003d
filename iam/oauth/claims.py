"""What an application learns about the person who signed in (contract section 10): the claims
of the ID token and of `/oauth2/userinfo`, by the scopes granted.

- always: `sub` (the account id), `org` (its organization id, when it has one);
- `profile`: `name`, `given_name`, `family_name`, `picture` (from the account's person, when set);
- `email`: `email`, `email_verified` (the account proved it receives mail there: an invitation
  accepted, a reset or email-change link followed, a provider's verified email);
- `roles`: `roles`, the names of the roles valid now, held directly or through a group (the
  same rows the API's own permission checks read, iam/auth/principal.py).

`amr` and `auth_time` come from how the session was authenticated, not from the scopes.
"""
from ..auth.principal import load_principal
from ..extensions import db
from ..models import Person

CLAIMS_SUPPORTED = ("sub", "org", "name", "given_name", "family_name", "picture", "email", "email_verified",
                    "roles", "amr", "auth_time", "sid", "nonce", "at_hash", "azp")


def person_claims(account):
    person = db.session.get(Person, account.person_id) if account.person_id is not None else None
    if person is None:
        return {}
    given, family = person.first_name or None, person.last_name or None
    names = [part for part in (person.first_name, person.middle_name, person.last_name) if part]
    claims = {"name": " ".join(names) if names else None, "given_name": given, "family_name": family,
              "picture": person.picture_url or None}
    return {name: value for name, value in claims.items() if value is not None}


def role_names(account_id, session_id):
    """The names of the roles valid now, or None when the session cannot go on."""
    principal = load_principal(account_id, session_id)
    if principal is None:
        return None
    return sorted({role.name for role in principal.roles})


def user_claims(account, scopes, session_id):
    """The claims for `scopes` (a set of scope names)."""
    claims = {"sub": str(account.id)}
    if account.organization_id is not None:
        claims["org"] = str(account.organization_id)
    if "profile" in scopes:
        claims.update(person_claims(account))
    if "email" in scopes:
        claims["email"] = account.email
        claims["email_verified"] = account.email_verified_at is not None
    if "roles" in scopes:
        claims["roles"] = role_names(account.id, session_id) or []
    return claims
