"""Single sign-on through organizations' OpenID Connect providers (contract section 8).

- `realm.py`: home-realm discovery (`POST /auth/login_url`), which provider an email's domain
  belongs to, and where a browser may be sent back (`IAM_SSO_RETURN_URLS`);
- `enforcement.py`: the password sign-in an organization's enforced provider forbids.

The flow itself (start, callback, exchange) is issue 13's next step.
"""
