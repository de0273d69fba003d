"""Per-client rate limits (Flask-Limiter) and the per-account login lock.

Client limits count per remote address in the storage named by IAM_RATELIMIT_STORAGE_URL
(in memory by default; `redis://...` so that several processes share their counters), and
answer 429 with Retry-After: the seconds until the limit lets the client in again. No other
answer carries a rate-limit header (Flask-Limiter's X-RateLimit-* and Retry-After are off), so
a 503's own Retry-After is never changed. Logins count failures only: a client that logs in
correctly is never slowed down. SCIM's refused keys count the same way (scim_refusals_exceeded,
count_scim_refusal: outside Flask-Limiter's decorators, since SCIM authenticates before any view).

A shared storage that fails (Redis down, hung, refusing) never fails a request: counting
moves to this process's memory, with the same limits, until the storage answers again
(see _OutageProofStrategy).

The account lock claims an attempt with one conditional UPDATE before any password is
checked, so N parallel attempts against a limit of L check at most L passwords.
"""
import functools
import logging
import math
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many
from limits.storage import MemoryStorage
from sqlalchemy import and_, case, or_, update

from .extensions import db
from .models import Account

log = logging.getLogger(__name__)

# A Redis that does not answer must not hold a request (and a gunicorn worker) for long; a
# `?socket_timeout=...&socket_connect_timeout=...` in IAM_RATELIMIT_STORAGE_URL wins over these.
REDIS_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
# While the shared storage is out, how often one request asks it whether it is back.
RECHECK_SECONDS = 5.0


def _failed(response):
    return response.status_code in (400, 401, 422)


# endpoint -> (config key holding the limit, which responses count; None: all of them)
# [, the methods limited, when not every method of the endpoint])
ROUTE_LIMITS = {
    "iam.auth_login": ("IAM_LOGIN_RATE_LIMIT", _failed),
    "iam.auth_api_login": ("IAM_LOGIN_RATE_LIMIT", _failed),
    "iam.auth_refresh": ("IAM_REFRESH_RATE_LIMIT", _failed),
    "iam.password_request_reset": ("IAM_RESET_RATE_LIMIT", None),
    "iam.password_reset": ("IAM_RESET_RATE_LIMIT", _failed),
    "iam.password_token_valid": ("IAM_RESET_RATE_LIMIT", None),
    "iam.email_change_confirm": ("IAM_RESET_RATE_LIMIT", _failed),
    "iam.password_change": ("IAM_LOGIN_RATE_LIMIT", _failed),
    # PATCH /accounts/me checks current_password when the email changes; GET checks nothing.
    "iam.accounts_me": ("IAM_LOGIN_RATE_LIMIT", _failed, ["PATCH"]),
    "iam.invitations_accept": ("IAM_INVITATION_RATE_LIMIT", _failed),
    "iam.invitations_resend": ("IAM_INVITATION_RATE_LIMIT", None),
    # Failures of single sign-on count like failed logins (contract section 8), in one count
    # for the three steps of the flow (SHARED below).
    "iam.auth_sso_start": ("IAM_LOGIN_RATE_LIMIT", _failed),
    "iam.auth_sso_callback": ("IAM_LOGIN_RATE_LIMIT", _failed),
    "iam.auth_sso_exchange": ("IAM_LOGIN_RATE_LIMIT", _failed),
}
# Wrong second factors count like failed logins too (contract section 9), in one count.
ROUTE_LIMITS.update({endpoint: ("IAM_LOGIN_RATE_LIMIT", _failed) for endpoint in (
    "iam.auth_mfa", "iam.auth_mfa_challenge", "iam.auth_step_up", "iam.mfa_factors_verify")})
# The sign-in pages (iam/web/) count with the API's endpoints they stand for (SHARED): a wrong
# password on the page and at POST /auth/login are one count per address, and so on.
ROUTE_LIMITS.update({endpoint: ("IAM_LOGIN_RATE_LIMIT", _failed) for endpoint in (
    "web.signin_password", "web.signin_mfa", "web.signin_mfa_passkey", "web.signin_sso")})
# endpoint -> the scope it shares its count with (the other endpoints count on their own)
SHARED = {"iam.auth_login": "login", "web.signin_password": "login", "iam.auth_sso_start": "sso", "iam.auth_sso_callback": "sso", "iam.auth_sso_exchange": "sso",
          "iam.auth_mfa": "mfa", "iam.auth_mfa_challenge": "mfa", "iam.auth_step_up": "mfa",
          "iam.mfa_factors_verify": "mfa", "web.signin_mfa": "mfa", "web.signin_mfa_passkey": "mfa",
          "web.signin_sso": "sso"}


class _OutageProofStrategy:
    """The rate-limit strategy on the shared storage while it answers, in memory while it does not.

    Flask-Limiter reaches its counters only through `Limiter.limiter` (the check before the
    view, the deduction after it for deduct_when), and so do the window behind a 429's
    Retry-After and SCIM's count of refused keys, so all of them come here. A storage error
    switches this process to a memory storage and redoes the call there: the request is limited
    all the same, per process, and is never failed, even when the view has already run. One request every
    RECHECK_SECONDS pings the shared storage; once it answers, counting goes back to it (the
    counts made in memory meanwhile stay in memory). Each switch logs one warning.

    Flask-Limiter's own in_memory_fallback (left off) does not cover the deduction after the
    view (4.1 raises: a 500 for a login that happened; with swallow_errors it logs a traceback
    and loses the count) nor reset(), and logs its recovery at INFO.
    """

    def __init__(self, primary):
        self.primary = primary
        self.fallback = type(primary)(MemoryStorage())
        storage = primary.storage
        # The storage's own errors (redis.RedisError: refused, timed out, read-only replica...),
        # and socket errors; anything else is a bug, and is not hidden.
        self.errors = () if isinstance(storage, MemoryStorage) else (*_as_tuple(storage.base_exceptions), OSError)
        self.down = False
        self._next_check = 0.0
        self._lock = threading.Lock()

    def hit(self, item, *identifiers, cost=1):
        return self._call("hit", item, *identifiers, cost=cost)

    def test(self, item, *identifiers, cost=1):
        return self._call("test", item, *identifiers, cost=cost)

    def get_window_stats(self, item, *identifiers):
        return self._call("get_window_stats", item, *identifiers)

    def clear(self, item, *identifiers):
        self.fallback.clear(item, *identifiers)
        if not self.down:
            self._call("clear", item, *identifiers)

    def reset(self):
        """Forget every count, in memory and in the shared storage (when it answers)."""
        self.fallback.storage.reset()
        try:
            self.primary.storage.reset()
        except NotImplementedError:
            pass
        except self.errors as error:
            self._lost(error)

    def _call(self, name, *args, **kwargs):
        if not self.down or self._back():
            try:
                return getattr(self.primary, name)(*args, **kwargs)
            except self.errors as error:
                self._lost(error)
        return getattr(self.fallback, name)(*args, **kwargs)

    def _lost(self, error):
        with self._lock:
            if self.down:
                return
            self.down = True
            self._next_check = time.monotonic() + RECHECK_SECONDS
        log.warning("rate-limit storage unreachable (%s: %s): counting in this process's memory until it answers",
                    type(error).__name__, error)

    def _back(self):
        """While down: True once the shared storage answers a ping (one ping per RECHECK_SECONDS)."""
        with self._lock:
            if not self.down:
                return True
            if time.monotonic() < self._next_check:
                return False
            self._next_check = time.monotonic() + RECHECK_SECONDS
        try:
            answers = self.primary.storage.check()
        except Exception:  # noqa: BLE001 - any failure to answer is "still down"
            answers = False
        if not answers:
            return False
        with self._lock:
            if not self.down:
                return True
            self.down = False
        log.warning("rate-limit storage answers again: counting there again")
        return True


def _as_tuple(errors):
    return errors if isinstance(errors, tuple) else (errors,)


class _Limiter(Limiter):
    """Flask-Limiter's Limiter whose counters survive an outage of their storage."""

    def init_app(self, app):
        super().init_app(app)
        self._outage_proof = _OutageProofStrategy(super().limiter)

    @property
    def limiter(self):
        return self._outage_proof

    def reset(self):
        self._outage_proof.reset()

    def retry_after(self):
        """Seconds until the limit this request broke lets its client in again (the 429's Retry-After)."""
        broken = self.current_limit  # Flask-Limiter's breached limit; its window comes through self.limiter
        return seconds_until(broken.window.reset_time) if broken is not None else 1


def seconds_until(moment):
    """Whole seconds from now to `moment` (a time.time() value), at least 1."""
    return max(1, math.ceil(moment - time.time()))


def _with_retry_after(limiter, limited):
    """The limited view, whose 429 (RateLimitExceeded) carries Retry-After: werkzeug's `retry_after`,
    which every error handler puts in its answer (the API's JSON:API error, the pages' page)."""
    @functools.wraps(limited)
    def view(*args, **kwargs):
        try:
            return limited(*args, **kwargs)
        except RateLimitExceeded as exceeded:
            exceeded.retry_after = limiter.retry_after()
            raise
    return view


def init_app(app):
    """A limiter of this app's own, wrapping the throttled endpoints' view functions."""
    url = app.config["IAM_RATELIMIT_STORAGE_URL"]
    redis = urlsplit(url).scheme.split("+")[0] in ("redis", "rediss", "valkey", "valkeys")
    # headers_enabled=False: Flask-Limiter would put X-RateLimit-* and a Retry-After of up to the
    # window's length on every answer of a limited endpoint (a 200, a 401, and a 503 whose own
    # Retry-After: 1 it raised); only the 429 says when to come back (_with_retry_after).
    limiter = _Limiter(get_remote_address, app=app, storage_uri=url, storage_options=REDIS_TIMEOUTS if redis else {},
                       headers_enabled=False, key_prefix="iam", strategy="moving-window")
    for endpoint, (setting, deduct_when, *methods) in ROUTE_LIMITS.items():
        view = app.view_functions[endpoint]
        value = (lambda setting=setting: current_app.config[setting])
        options = {"deduct_when": deduct_when, "methods": methods[0] if methods else None}
        limit = (limiter.shared_limit(value, scope=SHARED[endpoint], **options) if endpoint in SHARED
                 else limiter.limit(value, **options))
        limited = _with_retry_after(limiter, limit(view))
        app.view_functions[endpoint] = limited if not methods else _for_methods(view, limited, methods[0])
    _only_where_limited(app, limiter)
    app.extensions["iam_limiter"] = limiter
    return limiter


def _for_methods(view, limited, methods):
    """The limited view for these methods, the plain view for the others (GET /accounts/me)."""
    methods = frozenset(methods)

    @functools.wraps(view)
    def dispatch(*args, **kwargs):
        return (limited if request.method in methods else view)(*args, **kwargs)
    return dispatch


def _only_where_limited(app, limiter):
    """Flask-Limiter's hooks run on the requests of limited endpoints only.

    It registers three hooks for every request: a check of the app-wide limits before the view
    (we have none: each limit is on its view, and the view's wrapper checks it), the deduction
    of conditional limits (and the rate-limit headers, off) after it, and a reset of its per-request
    state at the end. The first is dropped; the others run for the endpoints (and methods) of
    ROUTE_LIMITS, and every other request pays nothing for rate limiting."""
    limited = {endpoint: frozenset(methods[0]) if methods else None
               for endpoint, (_, _, *methods) in ROUTE_LIMITS.items()}

    def applies():
        methods = limited.get(request.endpoint, False)
        return methods is None or (methods is not False and request.method in methods)

    def ours(func):
        return getattr(func, "__self__", None) is limiter or getattr(func, "args", (None,))[:1] == (limiter,)

    def guarded(func):
        def hook(*args):
            return func(*args) if applies() else (args[0] if args else None)
        return hook

    before = app.before_request_funcs.setdefault(None, [])
    before[:] = [func for func in before if not ours(func)]
    for hooks in (app.after_request_funcs.setdefault(None, []), app.teardown_request_funcs.setdefault(None, [])):
        hooks[:] = [guarded(func) if ours(func) else func for func in hooks]


# SCIM's refused authentications (the 401s of iam/scim/auth.py), per client address, in a count
# of their own with the limit IAM_SCIM_AUTH_RATE_LIMIT (empty: IAM_LOGIN_RATE_LIMIT's). Past it,
# /scim/v2 answers that address 429 before any key is looked up, a good key too, as the login
# limit blocks an address whatever it sends. An accepted key writes nothing here.
SCIM_SCOPE = "scim_auth"


@functools.lru_cache(maxsize=16)
def _parsed(text):
    return tuple(parse_many(text))


def _scim_count():
    """(the strategy, the limits, this address's identifiers), or None when rate limiting is off."""
    limiter = current_app.extensions["iam_limiter"]
    if not limiter.enabled:
        return None
    config = current_app.config
    limits = _parsed(config["IAM_SCIM_AUTH_RATE_LIMIT"] or config["IAM_LOGIN_RATE_LIMIT"])
    return limiter.limiter, limits, ("iam", get_remote_address(), SCIM_SCOPE)


def scim_refusals_exceeded():
    """Seconds until this address may try SCIM again when its refusals used up the limit, else None.
    Reads the count (one `test` per limit), adds nothing to it."""
    count = _scim_count()
    if count is None:
        return None
    strategy, limits, identifiers = count
    resets = [strategy.get_window_stats(item, *identifiers).reset_time
              for item in limits if not strategy.test(item, *identifiers)]
    return seconds_until(max(resets)) if resets else None


def count_scim_refusal():
    """One refused SCIM authentication from this address."""
    count = _scim_count()
    if count is not None:
        strategy, limits, identifiers = count
        for item in limits:
            strategy.hit(item, *identifiers)


def claim_login_attempt(account_id, now):
    """Count one attempt against the account; False when it is locked (no password may be checked)."""
    limit = current_app.config["IAM_LOGIN_MAX_FAILURES"]
    lock_over = and_(Account.locked_until.isnot(None), Account.locked_until <= now)
    claimed = db.session.execute(
        update(Account)
        .where(Account.id == account_id, or_(Account.failed_login_count < limit, lock_over))
        .values(failed_login_count=case((lock_over, 1), else_=Account.failed_login_count + 1),
                locked_until=case((lock_over, None), else_=Account.locked_until))
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()  # parallel attempts must see this claim before they check anything
    return bool(claimed)


def lock_if_exhausted(account_id, now):
    """After a failure: lock the account once its attempts are used up. True when it locked now."""
    seconds = current_app.config["IAM_LOGIN_LOCK_SECONDS"]
    return bool(db.session.execute(
        update(Account)
        .where(Account.id == account_id, Account.failed_login_count >= current_app.config["IAM_LOGIN_MAX_FAILURES"],
               Account.locked_until.is_(None))
        .values(locked_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    ).rowcount)
