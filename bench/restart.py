"""Restart: PostgreSQL restarted for real while our server is under load; what each second answered.

    python -m bench.restart --database-url URL [--seconds 12] [--connections 8]
                            [--restart-command "pg_ctlcluster --skip-systemctl-redirect 15 main restart"]

Starts our server (gunicorn, the project's gunicorn.conf.py), logs in one session per
connection, and keeps C connections busy with `GET /accounts/me` and `GET /accounts` (one
keep-alive connection each, closed loop). Halfway through it runs the restart command (it
restarts the server the benchmark database lives on: run it on a machine of your own, as a
user allowed to). It prints, per second, the answers by status, then when the restart
command ran and returned, and the verdict the server must meet: once the database accepts
connections again, no request fails. (While PostgreSQL is down, requests answer 503
`database_unavailable` with Retry-After: there is no database to answer them.)

The pool does not ping connections: every connection the server held is dead after the
restart, and each is found dead by a request's first statement, which then runs again on a
new connection (iam/reconnect.py). Without that, the first request on each dead connection
would fail.
"""
import argparse
import collections
import http.client
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time

from . import API_PREFIX, database_url_from, libpq_url
from .load import Server, discover, login, server_env


def default_restart_command():
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    version = versions[-1] if versions else "15"
    return f"pg_ctlcluster --skip-systemctl-redirect {version} main restart"


def client(port, token, stop, results):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    paths = [f"{API_PREFIX}/accounts/me", f"{API_PREFIX}/accounts?page[size]=10"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.api+json"}
    n = 0
    while not stop.is_set():
        path = paths[n % 2]
        n += 1
        started = time.monotonic()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            code = None
            if response.status >= 400:
                try:
                    code = json.loads(body)["errors"][0]["code"]
                except (ValueError, KeyError, IndexError, TypeError):
                    code = "?"
            results.append((started, response.status, code))
        except (OSError, http.client.HTTPException) as error:
            results.append((started, "socket", type(error).__name__))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="the seeded benchmark database (default: $IAM_DATABASE_URL)")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of load (12); the restart at half")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (8)")
    parser.add_argument("--restart-command", default=default_restart_command(),
                        help="the command that restarts PostgreSQL (default: %(default)s)")
    args = parser.parse_args(argv)

    url = database_url_from(args.database_url)
    dsn = libpq_url(url)
    discover(dsn)  # the database is seeded
    workdir = tempfile.mkdtemp(prefix="iam-restart-")
    load_args = argparse.Namespace(workers=None, threads=None)
    server = Server("ours", "wsgi:app", server_env(load_args, url, secrets.token_urlsafe(48)), workdir)
    try:
        server.wait_ready(int(os.environ.get("IAM_WORKERS") or (os.cpu_count() or 1) * 2 + 1))
        tokens = [login(server.port)[0] for _ in range(args.connections)]
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=client, args=(server.port, token, stop, results), daemon=True)
                   for token in tokens]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds / 2)
        restart_at = time.monotonic()
        done = subprocess.run(shlex.split(args.restart_command), capture_output=True, text=True)
        restarted_at = time.monotonic()
        if done.returncode != 0:
            print(f"the restart command failed ({done.returncode}): {done.stderr.strip()}", file=sys.stderr)
        time.sleep(max(0.0, args.seconds - (restarted_at - began)))
        stop.set()
        for thread in threads:
            thread.join(timeout=35)
        print(f"{args.connections} connections, {len(results)} requests in {args.seconds:g} s; "
              f"`{args.restart_command}` ran from {restart_at - began:.2f} s to {restarted_at - began:.2f} s")
        per_second = collections.defaultdict(collections.Counter)
        for started, status, code in results:
            per_second[int(started - began)][f"{status}" + (f" {code}" if code else "")] += 1
        for second in sorted(per_second):
            print(f"  {second:>3} s  " + "  ".join(f"{k}: {v}" for k, v in sorted(per_second[second].items())))
        after = [r for r in results if r[0] >= restarted_at]
        failed_after = [r for r in after if r[1] != 200]
        during = [r for r in results if restart_at <= r[0] < restarted_at and r[1] != 200]
        print(f"failed while PostgreSQL restarted: {len(during)}; requests sent after it was back: {len(after)}, "
              f"failed: {len(failed_after)}")
        reconnects = sum(1 for line in open(server.log_path, errors="replace") if "running it again" in line)
        print(f"requests run again on a new connection (server log): {reconnects}")
        return 1 if failed_after or done.returncode != 0 else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
