"""Password hashing with Argon2id (OWASP parameters: m=19456 KiB, t=2, p=1) and the password policy."""
from argon2 import PasswordHasher, Type
from zxcvbn.frequency_lists import FREQUENCY_LISTS
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 256
# The 30,000 most common passwords of public breach corpora (zxcvbn's ranked list).
COMMON = frozenset(FREQUENCY_LISTS["passwords"])

hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16,
                        type=Type.ID)

# Verified against when the email is unknown, so that answer takes as long as a wrong password.
_DUMMY_HASH = hasher.hash("not-a-real-password-just-for-timing")


def hash_password(password):
    return hasher.hash(password)


def verify_password(password_hash, password):
    """True when `password` matches; a missing or corrupt hash never matches."""
    if not password_hash:
        _burn(password)
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _burn(password):
    try:
        hasher.verify(_DUMMY_HASH, password)
    except VerificationError:
        pass


def burn_time(password):
    """Spend one hash's worth of time on a login that cannot succeed (unknown email)."""
    _burn(password)


def policy_problem(password):
    """Why `password` may not be used, or None: 8 to 256 characters, not a common password."""
    if not isinstance(password, str):
        return "The password must be a string."
    if len(password) < MIN_LENGTH:
        return f"The password must be at least {MIN_LENGTH} characters long."
    if len(password) > MAX_LENGTH:
        return f"The password must be at most {MAX_LENGTH} characters long."
    if password.lower() in COMMON:
        return "This password is too common; choose another."
    return None


def needs_rehash(password_hash):
    try:
        return hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
