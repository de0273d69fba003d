"""The catalogue of organizational-unit policies: the keys a unit's `policies` may hold.

They are carried as data for the applications that use this server (the IAM stores,
validates and serves them; it does not enforce them itself).
"""
from marshmallow import ValidationError

# key -> (value type, description)
CATALOGUE = {
    "mfa_required": ("boolean", "Members must use a second factor in applications that support one."),
    "session_idle_timeout": ("integer", "Seconds of inactivity after which applications end a member's session."),
    "password_min_length": ("integer", "Minimum password length applications should require of members."),
    "allowed_email_domains": ("array", "Email domains members' accounts may use, e.g. [\"example.com\"]."),
    "ip_allowlist": ("array", "Client networks (CIDR) applications should accept members from."),
    "data_retention_days": ("integer", "Days applications keep members' data after they leave."),
}

_CHECKS = {
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 31,
    "array": lambda v: isinstance(v, list) and all(isinstance(i, str) and len(i) <= 255 for i in v) and len(v) <= 1000,
}
_DESCRIBE = {"boolean": "true or false", "integer": "a non-negative integer", "array": "a list of strings"}


def validate_policies(value):
    """Marshmallow validator: only catalogue keys, each with a value of its declared type."""
    problems = []
    for key, item in value.items():
        if key not in CATALOGUE:
            problems.append(f"unknown policy {key!r} (see GET /organizational_units/policies)")
        elif not _CHECKS[CATALOGUE[key][0]](item):
            problems.append(f"{key} must be {_DESCRIBE[CATALOGUE[key][0]]}")
    if problems:
        raise ValidationError("; ".join(problems) + ".")
