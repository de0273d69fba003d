"""Step-up: for an account with an active second factor, the dangerous changes (its password or
email, an API key, deleting a factor) need one proven in this session within STEP_UP_WINDOW
(contract section 9). `POST /auth/step_up` (iam/mfa/signin.py) proves one; the session records
when (`mfa_at`), which the principal reads with everything else in its one statement."""
from datetime import timedelta

from ..jsonapi.errors import JsonApiError

STEP_UP_WINDOW = timedelta(minutes=10)


def step_up_required():
    return JsonApiError(403, "step_up_required", "Forbidden",
                        "This change needs your second factor again: POST /auth/step_up with a code (or a passkey), "
                        "then repeat it within 10 minutes.")


def require_step_up(principal, now):
    """A 403 step_up_required unless the caller's account has no active second factor, or one
    was proven in this session within STEP_UP_WINDOW."""
    if not principal.account.mfa_enabled:
        return
    proven = principal.session.mfa_at if principal.session is not None else None
    if proven is None or now - proven > STEP_UP_WINDOW:
        raise step_up_required()
