"""The one place that decides who may see and do what.

Until role-based authorization lands (roles with scopes, section 6 of the contract), the
resource endpoints are for global admins only; everyone may use /accounts/me.
"""
from ..jsonapi import Policy
from ..jsonapi.errors import forbidden


class IamPolicy(Policy):
    def visible(self, ctx, resource):
        return None  # admins see everything; everyone else is stopped by authorize()

    def authorize(self, ctx, resource, action, obj=None):
        if not ctx.principal.is_admin:
            raise forbidden("Only administrators may use this endpoint for now.")
