"""Production gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden with an environment variable (IAM_BIND, IAM_WORKERS,
IAM_THREADS, IAM_TIMEOUT, IAM_FORWARDED_ALLOW_IPS, IAM_CONTROL_SOCKET). Workers keep no state of their own:
scale out with more processes or hosts on one PostgreSQL, and share rate limits through
Redis (IAM_RATELIMIT_STORAGE_URL=redis://...).
"""
import multiprocessing
import os
import signal
import shutil
import tempfile

bind = os.environ.get("IAM_BIND", "127.0.0.1:8000")
# Argon2 hashing is CPU-bound, requests are otherwise I/O-bound: processes for the CPU,
# a few threads each for the waiting.
workers = int(os.environ.get("IAM_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("IAM_THREADS", 4))
worker_class = "gthread"
timeout = int(os.environ.get("IAM_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
# The longest request line gunicorn takes (its maximum): longer URIs than the app's MAX_URI_LENGTH
# (iam/jsonapi/query.py) reach the app, which answers the documented JSON:API 414, not gunicorn's page.
limit_request_line = 8190
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 10000
max_requests_jitter = 1000
# The app is loaded once, in the master, and every worker is a fork of it: a worker that starts
# (at boot, or recycled after max_requests) costs no import and no create_app (about 1.5 s of CPU
# each, taken from the workers serving meanwhile), the bootstrap admin is made once, and the
# workers share the master's pages of the app's code and objects. The connections the master
# opened while loading are closed before it forks (when_ready), and a worker never uses one it
# inherited (post_fork). New code is loaded by restarting the master, not by SIGHUP
# (IAM_PRELOAD_APP=0: each worker loads the app itself, and SIGHUP reloads it).
preload_app = os.environ.get("IAM_PRELOAD_APP", "1") != "0"
# Only trust X-Forwarded-* from the proxy in front (rate limits key on the client address).
forwarded_allow_ips = os.environ.get("IAM_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket (`gunicornc`) defaults to one path per user: a second server on the
# host would take it over and delete it on exit. Off unless IAM_CONTROL_SOCKET names a path.
control_socket = os.environ.get("IAM_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
if not control_socket:
    del control_socket
# The app writes its own JSON access log (iam.access); gunicorn's own goes to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("IAM_LOG_LEVEL", "info").lower()

# Prometheus metrics from every worker add up at /metrics. Without PROMETHEUS_MULTIPROC_DIR a
# private directory is made for this server and removed when it exits.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="iam-metrics-")


def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def _release_connections(server, close):
    """Empty the pools of the app loaded in the master: closed there (close=True), forgotten
    without a word to the database in a worker (close=False: the sockets are the master's)."""
    app = server.app.wsgi()
    if not hasattr(app, "app_context"):  # not the Flask app (bench/baseline.py keeps its own connections)
        return
    from iam.extensions import db

    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=close)


def when_ready(server):
    if server.cfg.preload_app:
        _release_connections(server, close=True)
        # What the app made while loading leaves the collector's generations before the
        # workers fork (their pages stay shared longer); each worker tunes itself below.
        from iam import gc_tuning
        gc_tuning.tune()


def post_fork(server, worker):
    # A new worker runs with the master's signal handlers until it installs its own
    # (Worker.init_signals): a SIGTERM in that window went into the copy of the master's signal
    # queue and was lost, the worker served on, and a shutdown waited graceful_timeout for it.
    # Until then, these signals end it as they would any process.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)
    if server.cfg.preload_app:
        _release_connections(server, close=False)


def post_worker_init(worker):
    # The app is loaded: its objects leave the collector's generations (iam/gc_tuning.py).
    from iam import gc_tuning
    gc_tuning.tune()


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
