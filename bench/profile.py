"""Profile: where a live worker of our server spends its time on one shape, sampled by py-spy.

    python -m bench.profile --database-url URL [--shape me] [--seconds 15] [--connections 4]
                            [--top 40] [--raw FILE]

Starts our server (gunicorn with the project's gunicorn.conf.py) with ONE worker, so every
request of the load lands in the process being sampled, loads it with the shape's requests
(the bench.load client, closed loop), and records that worker with `py-spy record` (100
samples a second, idle threads left out: only samples of a thread that is running Python or
waiting on the database or a socket count; with `--gil`, only the thread holding the GIL,
which is where the CPU goes). It prints, for the functions that matter, the share of samples
in which each is on the stack (inclusive), and a few summary lines: waiting on the database
(psycopg's wait), authentication (load_principal), rendering, the access log, metrics, rate
limiting. `--raw FILE` keeps py-spy's collapsed stacks (one line per stack and its count) for
speedscope, flamegraph.pl or a second look.

py-spy needs ptrace rights on the worker: root, or `kernel.yama.ptrace_scope=0`.
"""
import argparse
import collections
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import database_url_from, libpq_url
from .load import Server, build_shapes, discover, run_load, server_env, session_tokens, shape_requests

# (label, a substring of a py-spy frame as _short() writes it: "Class.function (pkg/module.py)").
SUMMARY = [
    ("waiting on PostgreSQL (psycopg's wait)", "Connection.wait (psycopg/"),
    ("pool checkout", "_ConnectionFairy._checkout (sqlalchemy/pool/"),
    ("pool pre-ping", "_do_ping_w_event"),
    ("authentication (load_principal)", "load_principal (iam/auth/principal.py)"),
    ("token decoding (PyJWT)", "decode_access_token (iam/auth/tokens.py)"),
    ("rendering (Renderer)", "Renderer.primary (iam/jsonapi/render.py)"),
    ("JSON encoding (orjson)", "encode (iam/jsonapi/encoding.py)"),
    ("access log and metrics (observability._finish)", "_finish (iam/observability.py)"),
    ("rate limiting (Flask-Limiter's checks and hooks)", "Limiter."),
    ("security headers", "_secure (iam/security_headers.py)"),
    ("ending the database session (teardown)", "_remove_session (iam/extensions.py)"),
    ("gunicorn, outside the app", None),
]


def record(pid, seconds, raw_path, gil=False):
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
                    "--format", "raw", "--output", raw_path, "--nonblocking", *(["--gil"] if gil else [])],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def parse(raw_path):
    """[(frames outermost first, count)] from py-spy's raw (collapsed) output."""
    stacks = []
    with open(raw_path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _short(frame):
    # "function (path/to/site-packages/pkg/mod.py:123)" -> "function (pkg/mod.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.", "/iam/", "/bench/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            if marker in ("/iam/", "/bench/"):
                where = marker.strip("/") + "/" + where
            elif marker == "lib/python3.":
                where = where.split("/", 1)[1] if "/" in where else where
            break
    return f"{name} ({where})"


def report(stacks, top, self_time=False):
    stacks = [([_short(frame) for frame in frames], count) for frames, count in stacks]
    total = sum(count for _, count in stacks)
    in_app = [(frames, count) for frames, count in stacks if any("full_dispatch_request" in f for f in frames)]
    app_total = sum(count for _, count in in_app)
    inclusive = collections.Counter()
    for frames, count in stacks:
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{total} samples of running threads, {app_total} of them inside Flask's request handling "
          f"({100 * app_total / max(1, total):.1f}%)\n")
    print("summary (share of all samples in which the part is on the stack):")
    for label, needle in SUMMARY:
        if needle is None:
            share = total - app_total
        else:
            share = sum(count for frames, count in stacks if any(needle in f for f in frames))
        print(f"  {100 * share / max(1, total):5.1f}%  {label}")
    print(f"\ntop {top} functions, inclusive:")
    for frame, count in inclusive.most_common(top):
        print(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    if self_time:
        leaves = collections.Counter()
        for frames, count in stacks:
            leaves[frames[-1]] += count
        print(f"\ntop {top} functions, self:")
        for frame, count in leaves.most_common(top):
            print(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    return {"samples": total, "in_app": app_total}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="the seeded benchmark database (default: $IAM_DATABASE_URL)")
    parser.add_argument("--shape", default="me", help="the shape to load (bench.load --list-shapes); me")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds sampled (15)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (4)")
    parser.add_argument("--threads", type=int, default=4, help="threads of the one worker (4)")
    parser.add_argument("--top", type=int, default=40, help="functions listed (40)")
    parser.add_argument("--raw", help="keep py-spy's collapsed stacks in this file")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL: where the CPU goes (without it, also "
                             "where threads wait: the database, the socket)")
    parser.add_argument("--self", dest="self_time", action="store_true",
                        help="also list the functions by self time (the frame at the top of the stack)")
    parser.add_argument("--no-access-log", action="store_true", help="IAM_ACCESS_LOG=0")
    args = parser.parse_args(argv)

    url = database_url_from(args.database_url)
    facts = discover(libpq_url(url))
    shapes = {shape.name: shape for shape in build_shapes(facts)}
    if args.shape not in shapes:
        raise SystemExit(f"unknown shape {args.shape}; see python -m bench.load --list-shapes")
    shape = shapes[args.shape]
    workdir = tempfile.mkdtemp(prefix="iam-profile-")
    load_args = argparse.Namespace(workers=1, threads=args.threads)
    env = server_env(load_args, url, secrets.token_urlsafe(48))
    if args.no_access_log:
        env["IAM_ACCESS_LOG"] = "0"
    server = Server("ours", "wsgi:app", env, workdir)
    raw_path = args.raw or os.path.join(workdir, "profile.raw")
    try:
        server.wait_ready(1)
        worker = server.worker_pids()[0]
        tokens = [None] * args.connections if shape.method == "POST" else session_tokens(server, args.connections)
        requests = shape_requests(shape, server, tokens)
        figures = {}
        loader = threading.Thread(target=lambda: figures.update(run_load(server, requests, args.seconds + 4, 2)))
        loader.start()
        time.sleep(4)  # warm-up, then sample in the middle of the load
        record(worker, args.seconds, raw_path, args.gil)
        loader.join()
        print(f"shape {shape.name}: {shape.example}\n{args.connections} connections on 1 worker x {args.threads} "
              f"threads: {figures.get('rps')} req/s, p50 {figures.get('p50_ms')} ms, "
              f"{figures.get('server_cpu_ms_per_request')} ms CPU per request\n")
        report(parse(raw_path), args.top, args.self_time)
    finally:
        server.stop()
        if not args.raw:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
