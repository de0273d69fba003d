"""Instructions: what one request costs inside the application process, counted by callgrind.

CPU time on a shared virtual machine moves by 30% from one run to the next (another tenant,
the host's frequency); the number of instructions a request executes does not. Each shape is
run twice under `valgrind --tool=callgrind`, in a process that starts the app, logs in,
warms up, then calls the WSGI app N times (the first run) or 2N times (the second), as
`bench.cpu` does; the difference of the two totals over N is the instructions per request,
start-up and warm-up cancelled out. Two runs go at a time (one per core).

    .venv/bin/python -m bench.instructions --database-url postgresql://.../iam_bench_100k
    .venv/bin/python -m bench.instructions --shapes me,show_include --requests 100

Under valgrind the process runs about 50 times slower: a shape takes one to three minutes.
The count covers this process only (PostgreSQL's work is not in it) and includes what the
interpreter executes for the measured requests, garbage collections included.
"""
import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from . import database_url_from

SHAPES = "me,show_include,list,list_include,sparse_1000,count"
COLLECTED = re.compile(r"Collected : (\d+)")


def _child(shape, requests):
    """In the measured process: the app, a login, 20 warm-up requests, then `requests` more."""
    from .cpu import call, environ_for, prepare

    app, token, shapes = prepare(os.environ["IAM_DATABASE_URL"])
    environs = [environ_for(path, token) for path in shapes[shape].paths[:64]]
    for k in range(20):
        call(app, environs[k % len(environs)])
    for k in range(requests):
        status = call(app, environs[k % len(environs)])
        if not status.startswith("200"):
            raise SystemExit(f"{shape} answered {status}")


def _count(url, shape, requests):
    env = {**os.environ, "IAM_DATABASE_URL": url}
    process = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bench.instructions", "--child", shape, str(requests)],
        env=env, capture_output=True, text=True, cwd=os.getcwd())
    found = COLLECTED.search(process.stderr)
    if process.returncode != 0 or found is None:
        raise SystemExit(f"{shape} x {requests} failed under valgrind:\n{process.stderr[-3000:]}")
    return int(found.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="the seeded benchmark database (default: $IAM_DATABASE_URL)")
    parser.add_argument("--shapes", default=SHAPES, help=f"GET shapes ({SHAPES})")
    parser.add_argument("--requests", type=int, default=100, help="N: the runs make N and 2N requests (100)")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    url = database_url_from(args.database_url)
    names = [name.strip() for name in args.shapes.split(",") if name.strip()]
    n = args.requests
    print(f"{'shape':<13} {'instructions/request':>21}   (callgrind; {n} and {2 * n} requests, the difference / {n})")
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in names:
            once, twice = pool.map(lambda k: _count(url, name, k), (n, 2 * n))
            print(f"{name:<13} {(twice - once) / n:>21,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
