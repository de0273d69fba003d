"""Settings read from IAM_* environment variables, with safe defaults.

Only development (IAM_ENV=development) and the test suite get a built-in signing key;
anywhere else a missing IAM_SECRET_KEY stops the process at start-up instead of signing
tokens with a key that is published in this repository.
"""
import math
import os
import re

from .jsonapi.encoding import json_loads
from .jsonapi.jsonsql import canonical_json

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789"


class ConfigError(RuntimeError):
    """The environment does not describe a runnable server."""


def database_url(raw, instance_path):
    """Normalise a database URL: SQLite default under instance/, psycopg 3 for PostgreSQL."""
    if not raw:
        return "sqlite:///" + os.path.join(instance_path, "iam.db")
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def _int_env(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _seconds_setting(env, overrides, name, default, allow_zero=False):
    """A duration in seconds (fractions allowed) from the overrides or the environment."""
    raw = overrides.get(name, env.get(name))
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        raise ConfigError(f"{name} must be positive" + (" (or 0 for no limit)" if allow_zero else ""))
    return value


_ORIGIN_HOST = re.compile(r"\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def cors_origins(raw):
    """IAM_CORS_ORIGINS: exact browser origins (`scheme://host[:port]`), comma-separated, as a
    browser serialises them in `Origin` (lowercase, no default port); none by default."""
    from urllib.parse import urlsplit

    if raw in (None, ""):
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    origins = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        problem = None
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError:
            parts, port, problem = None, None, "a port that is not 1 to 65535, or a malformed IPv6 address"
        if problem is None:
            host = (parts.hostname or "").lower()
            host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
            if "*" in item:
                problem = "wildcards are not allowed: list each origin"
            elif not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme or "") or not parts.netloc:
                problem = "it is not scheme://host[:port]"
            elif parts.path or parts.query or parts.fragment or item.endswith(("?", "#")):
                problem = "an origin has no path (not even a trailing /), query or fragment"
            elif "@" in parts.netloc:
                problem = "an origin has no user name or password"
            elif not _ORIGIN_HOST.fullmatch(host):
                problem = "its host is not a host name or IP address"
            elif port == 0:
                problem = "its port is 0"
        if problem:
            raise ConfigError(f"IAM_CORS_ORIGINS: {item!r} is not an exact origin ({problem}); "
                              "give scheme://host[:port] values separated by commas, "
                              "e.g. https://app.example.com,http://localhost:3000")
        scheme = parts.scheme.lower()
        origin = f"{scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS.get(scheme)) else f":{port}")
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def engine_options(url, env, overrides):
    """SQLAlchemy engine options, and the database timeouts they apply (see README, Configuration).

    Bound parameters never reach a log or an exception's text (hide_parameters). On PostgreSQL
    every connection gets the statement and lock timeouts (libpq `options`) and a connect
    timeout; on SQLite the lock timeout is the busy timeout, set when the file is opened.
    Migrations run without the statement timeout (iam/extensions.py)."""
    from sqlalchemy.engine import make_url

    statement = _seconds_setting(env, overrides, "IAM_DB_STATEMENT_TIMEOUT", 10.0, allow_zero=True)
    lock = _seconds_setting(env, overrides, "IAM_DB_LOCK_TIMEOUT", 5.0)
    connect = _seconds_setting(env, overrides, "IAM_DB_CONNECT_TIMEOUT", 5.0)
    pool = _seconds_setting(env, overrides, "IAM_DB_POOL_TIMEOUT", 5.0)
    # No pool_pre_ping: a round trip on every checkout, for nothing almost always. A connection
    # found dead by a request's first statement makes the request run again (iam/reconnect.py).
    options = {"json_serializer": canonical_json, "json_deserializer": json_loads, "hide_parameters": True}
    parsed = make_url(url)
    pool_seconds = max(1, math.ceil(pool))  # Flask-SQLAlchemy's engine_from_config makes it an int
    if parsed.get_backend_name() == "postgresql":
        # TimeZone=UTC: timestamps arrive in UTC (psycopg's own timezone.utc), as they render.
        server = f"-c statement_timeout={round(statement * 1000)} -c lock_timeout={round(lock * 1000)} -c TimeZone=UTC"
        given = parsed.query.get("options")  # the URL's own options (e.g. a search_path) are kept
        if isinstance(given, tuple):
            given = " ".join(given)
        # libpq takes whole seconds and waits at least 2.
        options["connect_args"] = {"options": f"{given} {server}" if given else server,
                                   "connect_timeout": max(1, round(connect))}
        options["pool_timeout"] = pool_seconds
    elif parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": lock}  # sqlite3 sets busy_timeout from it
        if parsed.database not in (None, "", ":memory:") and "mode=memory" not in str(parsed):
            options["pool_timeout"] = pool_seconds  # an in-memory database has a single static connection
    return options, {"statement": statement, "lock": lock, "connect": connect, "pool": pool}


def _list_env(env, name):
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]


def load(instance_path, env=None, overrides=None):
    """Build the Flask config mapping from the environment (and test overrides)."""
    env = os.environ if env is None else env
    overrides = overrides or {}
    iam_env = overrides.get("IAM_ENV", env.get("IAM_ENV", "production"))
    testing = bool(overrides.get("TESTING"))

    secret = overrides.get("IAM_SECRET_KEY", env.get("IAM_SECRET_KEY"))
    if not secret:
        if iam_env != "development" and not testing:
            raise ConfigError(
                "IAM_SECRET_KEY is not set. Set it to a long random value "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
                "or set IAM_ENV=development to use the insecure development key."
            )
        secret = DEV_SECRET_KEY
    if len(secret) < 32:
        raise ConfigError("IAM_SECRET_KEY must be at least 32 characters long")

    url = database_url(overrides.get("IAM_DATABASE_URL", env.get("IAM_DATABASE_URL")), instance_path)
    options, timeouts = engine_options(url, env, overrides)

    config = {
        "IAM_ENV": iam_env,
        "SECRET_KEY": secret,
        "IAM_SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": options,
        # Seconds; a request waiting longer on the database answers 503 (iam/jsonapi/errors.py).
        "IAM_DB_STATEMENT_TIMEOUT": timeouts["statement"],
        "IAM_DB_LOCK_TIMEOUT": timeouts["lock"],
        "IAM_DB_CONNECT_TIMEOUT": timeouts["connect"],
        "IAM_DB_POOL_TIMEOUT": timeouts["pool"],
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        # Request bodies above 1 MiB get a 413 before they are read.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "IAM_ACCESS_TOKEN_TTL": _int_env(env, "IAM_ACCESS_TOKEN_TTL", 900),
        "IAM_REFRESH_TOKEN_TTL": _int_env(env, "IAM_REFRESH_TOKEN_TTL", 14 * 24 * 3600),
        # A session unused for this long ends: neither its access nor its refresh tokens work.
        "IAM_SESSION_IDLE_TIMEOUT": _int_env(env, "IAM_SESSION_IDLE_TIMEOUT", 24 * 3600),
        "IAM_MAIL_URL": env.get("IAM_MAIL_URL", ""),
        "IAM_MAIL_FROM": env.get("IAM_MAIL_FROM", "iam@localhost"),
        # Where a reset mail sends people: an application page taking ?token=... ({token} is
        # replaced); empty: the mail carries the token and the API call that uses it.
        "IAM_PASSWORD_RESET_URL": env.get("IAM_PASSWORD_RESET_URL", ""),
        # The page an invitation mail links to ({token} replaced); empty: the mail carries the token.
        "IAM_INVITATION_URL": env.get("IAM_INVITATION_URL", ""),
        "IAM_INVITATION_TTL": _int_env(env, "IAM_INVITATION_TTL", 72 * 3600),
        # A self-service email change waits this long for the link mailed to the new address;
        # IAM_EMAIL_CHANGE_URL is the page that link opens ({token} replaced), empty: the token itself.
        "IAM_EMAIL_CHANGE_TTL": _int_env(env, "IAM_EMAIL_CHANGE_TTL", 24 * 3600),
        "IAM_EMAIL_CHANGE_URL": env.get("IAM_EMAIL_CHANGE_URL", ""),
        "IAM_INVITATION_RATE_LIMIT": env.get("IAM_INVITATION_RATE_LIMIT", "10 per 10 minutes"),
        "IAM_RATELIMIT_STORAGE_URL": env.get("IAM_RATELIMIT_STORAGE_URL", "memory://"),
        # Per client address (limits syntax, e.g. "20 per 10 minutes"); logins count failures only.
        "IAM_LOGIN_RATE_LIMIT": env.get("IAM_LOGIN_RATE_LIMIT", "20 per 10 minutes"),
        "IAM_RESET_RATE_LIMIT": env.get("IAM_RESET_RATE_LIMIT", "10 per hour"),
        "IAM_REFRESH_RATE_LIMIT": env.get("IAM_REFRESH_RATE_LIMIT", "30 per 10 minutes"),
        # Refused SCIM authentications per client address before /scim/v2 answers it 429; empty: the
        # value of IAM_LOGIN_RATE_LIMIT (identity providers may call from addresses they share).
        "IAM_SCIM_AUTH_RATE_LIMIT": env.get("IAM_SCIM_AUTH_RATE_LIMIT", ""),
        # Per account: this many failures in a row lock it for this many seconds.
        "IAM_LOGIN_MAX_FAILURES": _int_env(env, "IAM_LOGIN_MAX_FAILURES", 5),
        "IAM_LOGIN_LOCK_SECONDS": _int_env(env, "IAM_LOGIN_LOCK_SECONDS", 900),
        "IAM_BOOTSTRAP_ADMIN_EMAIL": env.get("IAM_BOOTSTRAP_ADMIN_EMAIL", ""),
        "IAM_BOOTSTRAP_ADMIN_PASSWORD": env.get("IAM_BOOTSTRAP_ADMIN_PASSWORD", ""),
        "JSON_SORT_KEYS": False,
        # One JSON line per request on the iam.access logger (no headers, secret parameters redacted).
        "IAM_ACCESS_LOG": env.get("IAM_ACCESS_LOG", "1") not in ("0", "false", "no"),
        # When set, /metrics needs Authorization: Bearer <this>.
        "IAM_METRICS_TOKEN": env.get("IAM_METRICS_TOKEN", ""),
        # The server's public base URL: redirect URIs given to identity providers, links in mail.
        "IAM_ISSUER": env.get("IAM_ISSUER", "http://127.0.0.1:5000").rstrip("/"),
        # Secrets read back are sealed with a key derived from this (default: from IAM_SECRET_KEY);
        # keys being retired, comma-separated, still open what they sealed (iam/secret_store.py).
        "IAM_ENCRYPTION_KEY": env.get("IAM_ENCRYPTION_KEY", ""),
        "IAM_ENCRYPTION_OLD_KEYS": _list_env(env, "IAM_ENCRYPTION_OLD_KEYS"),
        # URL prefixes single sign-on may send a browser back to (none by default).
        "IAM_SSO_RETURN_URLS": _list_env(env, "IAM_SSO_RETURN_URLS"),
    }
    config.update(overrides)
    for name in ("IAM_ENCRYPTION_KEY", *config["IAM_ENCRYPTION_OLD_KEYS"]):
        value = config["IAM_ENCRYPTION_KEY"] if name == "IAM_ENCRYPTION_KEY" else name
        if value and len(value) < 32:
            raise ConfigError("IAM_ENCRYPTION_KEY (and each of IAM_ENCRYPTION_OLD_KEYS) must be at least 32 characters long")
    # Browser origins allowed to call the API (iam/cors.py); a bad value stops the start.
    config["IAM_CORS_ORIGINS"] = cors_origins(overrides.get("IAM_CORS_ORIGINS", env.get("IAM_CORS_ORIGINS")))
    return config
