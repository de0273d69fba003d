"""Single sign-on through organizations' OpenID Connect providers (contract section 8).

- `realm.py`: home-realm discovery (`POST /auth/login_url`), which provider an email's domain
  belongs to, and where a browser may be sent back (`IAM_SSO_RETURN_URLS`);
- `provider.py`: a provider's discovery document, fetched and kept;
- `flow.py`: the sign-in's start (`GET /auth/sso/start`).

The password sign-in an enforced provider forbids is the login's own check
(`iam/auth/views.password_forbidden`). The callback, the exchange and account resolution are
issue 13's next step.
"""
