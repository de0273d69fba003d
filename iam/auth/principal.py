"""Who is calling: the account behind a bearer token, with the roles valid right now."""
from dataclasses import dataclass, field

from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..jsonapi.errors import unauthenticated
from ..models import Account, utcnow
from .tokens import InvalidToken, decode_access_token


@dataclass
class Principal:
    account: Account
    roles: list = field(default_factory=list)   # AccountRole rows valid now

    @property
    def account_id(self):
        return self.account.id

    def has_role(self, name, scopes=None):
        return any(r.name == name and (scopes is None or r.scopes == scopes) for r in self.roles)

    @property
    def is_admin(self):
        """A global admin: role `admin` with empty scopes, valid now."""
        return self.has_role("admin", {})


def load_principal(account_id, now=None):
    """The principal for an account that may authenticate now, else None."""
    now = now or utcnow()
    account = db.session.scalars(
        select(Account).where(Account.id == account_id).options(selectinload(Account.roles))
    ).one_or_none()
    if account is None or not account.is_active(now):
        return None
    return Principal(account, [r for r in account.roles if r.is_valid(now)])


def authenticate():
    """The request's principal from `Authorization: Bearer`, or a 401."""
    if "principal" in g:
        return g.principal
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("Send Authorization: Bearer <token> (get one from POST /auth/login).")
    try:
        claims = decode_access_token(token.strip())
    except InvalidToken:
        raise unauthenticated("The access token is invalid or has expired.") from None
    principal = load_principal(int(claims["sub"]))
    if principal is None:
        raise unauthenticated("The access token is invalid or has expired.")
    g.principal = principal
    return principal
