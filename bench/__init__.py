"""Benchmarks: a deterministic data generator, a minimal baseline server and a load generator.

- `python -m bench.seed --accounts 100000 --database-url URL`: fill a database (bench/seed.py)
- `bench/baseline.py`: the same documents from hand-written SQL, served by gunicorn
- `python -m bench.load --database-url URL`: both servers under the same load, side by side

See bench/README.md.
"""
import os

# The account every benchmark request runs as (a global admin), created by bench.seed.
ADMIN_EMAIL = "bench-admin@bench.example"
ADMIN_PASSWORD = "bench-admin-password-not-secret"
# Every generated account's password (they all share one precomputed Argon2 hash).
USER_PASSWORD = "bench-user-password-not-secret"
# Domains of the generated emails, user{n}@{DOMAINS[n % len(DOMAINS)]}.
DOMAINS = ("example.com", "example.org", "example.net", "corp.example", "mail.example")

API_PREFIX = "/api/v3/iam"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def libpq_url(url):
    """A URL psycopg understands (SQLAlchemy-style `postgresql+psycopg://` is accepted)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def database_url_from(args_url):
    url = args_url or os.environ.get("IAM_DATABASE_URL")
    if not url:
        raise SystemExit("give --database-url (or set IAM_DATABASE_URL)")
    return url
