"""Which account a validated sign-in at a provider is (contract section 8, step 2).

In this order:
1. the account linked to this provider's `sub` (an identity is the provider and the subject:
   two organizations may use providers with one issuer, such as Google's);
2. else the account with the verified email inside the provider's own organization, which is
   then linked: never an account of another organization, nor one without an organization,
   and never an account already linked to another subject at this provider (the email changed
   hands at the provider: the new holder is not the old one);
3. else, when the provider has `jit_provisioning`, a new person and account (`auth_type: sso`)
   in the organization, the person's attributes from the claims by the provider's
   `claim_mapping`, and the provider's `default_roles`;
4. else NoAccount.

Two first sign-ins of one person racing each other both end on the same account: the
loser's insert fails on the unique email or identity inside a savepoint, and it looks again.
"""
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Account, AccountIdentity, Person
from ..models.base import record_activity
from ..resources.invitations import granted_role


class NoAccount(Exception):
    """No account may sign in with this identity (the message says why, for the log)."""


class Refused(Exception):
    """An account was found but may not sign in this way (the message says why, for the log)."""


# Person attribute -> (column length, how a claim's value becomes the attribute's; None: unusable)
def _text(limit):
    def convert(value):
        return value.strip()[:limit] or None if isinstance(value, str) else None
    return convert


def _url(value):
    value = _text(2048)(value)
    return value if value and value.startswith(("https://", "http://")) else None


def _email(value):
    value = _text(320)(value)
    return value if value and "@" in value else None


def _birthday(value):
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:  # "0000-03-15" (year withheld) and the like
        return None


def _address(value):
    # The standard `address` claim is an object (Core section 5.1.1); its `formatted` is the text.
    return _text(4000)(value.get("formatted") if isinstance(value, dict) else value)


CONVERSIONS = {"first_name": _text(255), "middle_name": _text(255), "last_name": _text(255), "picture_url": _url,
               "gender": _text(64), "birthday": _birthday, "secondary_email": _email, "contact_number": _text(64),
               "physical_address": _address}


def person_values(claim_mapping, claims):
    """The person's attributes taken from the claims (those absent or unusable are left empty)."""
    values = {}
    for attribute, claim in (claim_mapping or {}).items():
        convert = CONVERSIONS.get(attribute)
        value = convert(claims.get(claim)) if convert else None
        if value is not None:
            values[attribute] = value
    return values


def linked(provider, subject):
    return db.session.scalars(select(AccountIdentity).where(
        AccountIdentity.identity_provider_id == provider.id, AccountIdentity.subject == subject)).one_or_none()


def resolve(provider, claims, email, now):
    """(account, how: None for a linked identity, "sso_link" or "sso_jit")."""
    for attempt in range(2):
        try:
            with db.session.begin_nested():
                return _resolve(provider, claims, email, now)
        except IntegrityError:
            if attempt:
                raise Refused("the account could not be created or linked (a parallel sign-in?)") from None
    raise AssertionError("unreachable")


def _resolve(provider, claims, email, now):
    subject = claims["sub"]
    identity = linked(provider, subject)
    if identity is not None:
        # Bookkeeping, as a login's: parallel sign-ins of one identity must all succeed.
        record_activity(db.session, identity, now, email=email, last_login_at=now)
        return identity.account, None
    account = db.session.scalars(select(Account).where(func.lower(Account.email) == email.lower())).one_or_none()
    if account is not None:
        if account.organization_id != provider.organization_id:
            raise NoAccount(f"{email} belongs to an account outside the provider's organization")
        other = db.session.scalar(select(AccountIdentity.subject).where(
            AccountIdentity.account_id == account.id, AccountIdentity.identity_provider_id == provider.id))
        if other is not None:
            raise Refused(f"{email}'s account is linked to another subject of this provider")
        db.session.add(AccountIdentity(account_id=account.id, identity_provider_id=provider.id, subject=subject,
                                       email=email, last_login_at=now))
        db.session.flush()
        return account, "sso_link"
    if not provider.jit_provisioning:
        raise NoAccount(f"no account has the email {email} and the provider does not create accounts")
    person = Person(organization_id=provider.organization_id, facets=[],
                    **person_values(provider.claim_mapping, claims))
    account = Account(email=email, organization_id=provider.organization_id, person=person, auth_type="sso",
                      account_type="personal_account", preferences={}, password_hash=None, last_login_at=now)
    account.roles = [granted_role(role, provider.organization_id, info={"identity_provider": provider.id})
                     for role in provider.default_roles or []]
    db.session.add(account)
    db.session.flush()
    db.session.add(AccountIdentity(account_id=account.id, identity_provider_id=provider.id, subject=subject,
                                   email=email, last_login_at=now))
    db.session.flush()
    return account, "sso_jit"
