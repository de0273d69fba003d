"""Second factors (contract section 9).

- `codes.py`: one-time codes (TOTP, RFC 6238, with pyotp) and recovery codes, each accepted once;
- `passkeys.py`: WebAuthn registration and authentication ceremonies (the `webauthn` package),
  relying party id and origin from IAM_ISSUER;
- `signin.py`: the second step of a password sign-in (`POST /auth/mfa`, `/auth/mfa/challenge`),
  enrolment forced by an `mfa_required` policy, and step-up (`POST /auth/step_up`).

The factors themselves are the `mfa_factors` resource (iam/resources/mfa_factors.py). What
needs a recent second factor is auth's own check (iam/auth/stepup.py): this package plugs the
second step into the password login through `iam.auth.views.PASSWORD_STEPS`.
"""
