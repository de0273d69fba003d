"""CPU: what one request costs inside the application process, without an HTTP server.

    python -m bench.cpu --database-url URL [--shapes me,show_include] [--requests 3000]
                        [--no-access-log] [--profile]

Builds the app as gunicorn would (wsgi.py's create_app, production settings, the access log
on and written to /dev/null, the garbage collector tuned as gunicorn.conf.py tunes it), logs the bench admin in, and calls the WSGI application
directly, one request after another on one thread, with a prebuilt environ per request:
no gunicorn, no sockets, no other thread. For each shape it prints the CPU time of this
process per request (`time.process_time`: the app, SQLAlchemy and psycopg's client side;
PostgreSQL's own work is another process) and the wall time per request, the median of
five batches. `--profile` runs the first shape under cProfile and prints the top functions
by own time; `--baseline` measures bench/baseline.py's WSGI function the same way (the app
still logs in and issues the token, which the baseline accepts).

This is the figure issue 12 sets a target for (`/accounts/me` under 0.6 ms); bench.load's
`cpu/req` column adds gunicorn's own work per request (parsing, socket writes, threads).
"""
import argparse
import io
import logging
import os
import statistics
import sys
import time

from . import ADMIN_EMAIL, ADMIN_PASSWORD, API_PREFIX, database_url_from, libpq_url
from .load import build_shapes, discover

BATCHES = 5


def environ_for(target, token, method="GET", body=b""):
    from werkzeug.test import EnvironBuilder

    path, _, query = target.partition("?")
    builder = EnvironBuilder(path=path, query_string=query, method=method, base_url="http://127.0.0.1:5000",
                             headers={"Accept": "application/vnd.api+json", "Authorization": f"Bearer {token}",
                                      "User-Agent": "bench.cpu"})
    environ = builder.get_environ()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    return environ


def call(app, environ):
    status = []
    env = dict(environ)
    env["wsgi.input"] = io.BytesIO(b"")
    body = app(env, lambda s, h, exc_info=None: status.append(s))
    try:
        for _ in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()
    return status[0]


def measure(app, environs, requests):
    per_batch = max(1, requests // BATCHES)
    cpu, wall = [], []
    for _ in range(BATCHES):
        c0, w0 = time.process_time(), time.perf_counter()
        for k in range(per_batch):
            status = call(app, environs[k % len(environs)])
            if not status.startswith("200"):
                raise SystemExit(f"answered {status}")
        cpu.append((time.process_time() - c0) / per_batch * 1000)
        wall.append((time.perf_counter() - w0) / per_batch * 1000)
    return statistics.median(cpu), statistics.median(wall)


def prepare(url, access_log=True, tuned_gc=True):
    """(the app as production configures it, an admin's access token, the shapes by name)."""
    shapes = {shape.name: shape for shape in build_shapes(discover(libpq_url(url)))}
    os.environ.update({"IAM_DATABASE_URL": url, "IAM_ENV": "production", "IAM_LOG_LEVEL": "WARNING",
                       "IAM_SECRET_KEY": os.environ.get("IAM_SECRET_KEY") or "bench-cpu-" + "x" * 40,
                       "IAM_BOOTSTRAP_ADMIN_EMAIL": "", "IAM_BOOTSTRAP_ADMIN_PASSWORD": "",
                       "IAM_RATELIMIT_STORAGE_URL": "memory://"})
    if not access_log:
        os.environ["IAM_ACCESS_LOG"] = "0"
    from iam import create_app

    app = create_app()
    access = logging.getLogger("iam.access")
    for handler in access.handlers:
        handler.stream = open(os.devnull, "w")  # formatted and written as in production, then dropped
    if tuned_gc:
        from iam import gc_tuning

        gc_tuning.tune()  # as gunicorn.conf.py's post_worker_init does in every worker
    login = app.test_client().post(f"{API_PREFIX}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    if login.status_code != 200:
        raise SystemExit(f"login answered {login.status_code}: {login.get_data(as_text=True)[:300]}")
    return app, login.get_json()["meta"]["token"], shapes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="the seeded benchmark database (default: $IAM_DATABASE_URL)")
    parser.add_argument("--shapes", default="me,show_include,list,list_include,sparse_1000,count",
                        help="GET shapes (me,show_include,list,list_include,sparse_1000,count)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per shape, in five batches (3000)")
    parser.add_argument("--no-access-log", action="store_true", help="IAM_ACCESS_LOG=0")
    parser.add_argument("--default-gc", action="store_true",
                        help="leave the garbage collector as CPython sets it (default: tuned as gunicorn.conf.py does)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first shape, top functions by own time")
    parser.add_argument("--baseline", action="store_true",
                        help="measure bench/baseline.py's WSGI function instead, with the same token and requests")
    args = parser.parse_args(argv)

    app, token, shapes = prepare(database_url_from(args.database_url), access_log=not args.no_access_log,
                                 tuned_gc=not args.default_gc)
    if args.baseline:
        from . import baseline

        app = baseline.application
    print(f"{'shape':<13} {'cpu ms/req':>10} {'wall ms/req':>11}")
    for k, name in enumerate(n.strip() for n in args.shapes.split(",") if n.strip()):
        shape = shapes[name]
        environs = [environ_for(path, token) for path in shape.paths[:64]]
        measure(app, environs, 200)  # warm: statement caches, the pool, the first answers' allocations
        if args.profile and k == 0:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            measure(app, environs, args.requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_CPU_SORT", "tottime")).print_stats(int(os.environ.get("BENCH_CPU_TOP", "35")))
        cpu, wall = measure(app, environs, args.requests)
        print(f"{name:<13} {cpu:>10.3f} {wall:>11.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
