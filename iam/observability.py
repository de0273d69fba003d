"""Operations: one JSON access-log line per request, and Prometheus metrics at /metrics.

The access log never carries credentials: no headers are logged, and the values of query
parameters that can hold secrets (a reset token in token_valid, say) are replaced.
A client's X-Request-ID is kept only when it is a safe token (REQUEST_ID); any other value
is replaced by a generated id, so the header and the log line never carry what a client
smuggled into them.

Metrics are labelled by URL rule (`/api/v3/iam/accounts/<int:id>`), not by URL, so their
number stays bounded. Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py does) so /metrics adds up every worker. /metrics answers loopback
clients that did not come through a proxy, or, with IAM_METRICS_TOKEN set, whoever
presents that bearer token (and nobody else).
"""
import atexit
import hmac
import ipaddress
import itertools
import json
import logging
import os
import queue
import re
import sys
import threading
import time

import orjson

from flask import Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

access_log = logging.getLogger("iam.access")
SECRET_PARAMETERS = frozenset({"token", "refresh_token", "password", "key", "api_key", "current_password",
                               "new_password", "access_token",
                               # single sign-on: the provider's code and state at the callback, an
                               # invitation's token at the start, an application's exchange code
                               "code", "state", "invitation_token", "sso_code"})

REQUESTS = Counter("iam_requests_total", "HTTP requests answered.", ["method", "endpoint", "status"])
LATENCY = Histogram("iam_request_duration_seconds", "Time to answer an HTTP request.", ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
# An X-Request-ID a client sends is used when it is 1 to 128 of these characters.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A request carrying one of these came through a proxy: its REMOTE_ADDR is the proxy's.
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _query():
    return {key: ("[redacted]" if key.lower() in SECRET_PARAMETERS else values if len(values) > 1 else values[0])
            for key, values in request.args.lists()}


# Request ids made here (32 hex digits): this process's random prefix and a counter (unique across processes
# and restarts without a system call per request; a correlation id, not a secret).
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(1)


def _new_id_prefix():
    """A forked process (a gunicorn worker of a preloaded app) takes a prefix of its own: the
    master's, with a counter starting over in every worker, would repeat ids across workers."""
    global _ID_PREFIX, _ids
    _ID_PREFIX, _ids = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)
# The metric children of each (method, endpoint, status): labels() takes a lock and builds a
# key on every call; a request needs only to find its two.
_children = {}


def _start():
    # The proxies (`g`, `request`) resolved once: each use of one is a context-variable lookup.
    state = g._get_current_object()
    state.iam_started = time.perf_counter()
    given = request.environ.get("HTTP_X_REQUEST_ID", "")
    state.iam_request_id = given if given and REQUEST_ID.fullmatch(given) else f"{_ID_PREFIX}{next(_ids):016x}"


def _metrics(method, endpoint, status):
    key = (method, endpoint, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (REQUESTS.labels(method, endpoint, str(status)), LATENCY.labels(method, endpoint))
    return children


def _finish(response):
    state = g._get_current_object()
    started = state.pop("iam_started", None)
    if started is None:
        return response
    elapsed = time.perf_counter() - started
    req = request._get_current_object()
    rule = req.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    method, status = req.method, response.status_code
    method = method if method in METHODS else "OTHER"  # a client's made-up method is no new label
    counter, latency = _metrics(method, endpoint, status)
    counter.inc()
    latency.observe(elapsed)
    request_id = state.iam_request_id
    response.headers["X-Request-ID"] = request_id
    if current_app.config.get("IAM_ACCESS_LOG", True) and access_log.isEnabledFor(logging.INFO):
        principal = getattr(state, "principal", None)
        environ = req.environ
        _log_line(_json({
            "request_id": request_id, "method": method, "path": req.path,
            "query": _query() if environ.get("QUERY_STRING") else {},
            "endpoint": endpoint, "status": status, "duration_ms": round(elapsed * 1000, 2),
            "bytes": response.calculate_content_length(), "remote_addr": req.remote_addr,
            "user_agent": environ.get("HTTP_USER_AGENT", "")[:200] or None,
            "account_id": principal.account_id if principal is not None else None,
        }))
    return response


def _log_line(line):
    """The access-log line to its writer: straight onto the queue when the logger's one handler is
    the writer set up by init_app and nothing else sees the record (no filter, no other handler,
    no propagation), which saves the logging module's record (a LogRecord, the caller's frame,
    the thread's and process's names) on every request; through the logger otherwise."""
    handlers = access_log.handlers
    if (len(handlers) == 1 and type(handlers[0]) is BackgroundLineHandler and not access_log.propagate
            and not access_log.filters and not handlers[0].filters and handlers[0].level <= logging.INFO
            and handlers[0].formatter is _PLAIN):
        handlers[0].put(line)
    else:
        access_log.info(line)


def _json(line):
    try:
        return orjson.dumps(line).decode()
    except TypeError:  # a value orjson refuses (a lone surrogate): the standard library escapes it
        return json.dumps(line, separators=(",", ":"))


def _loopback(address):
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # no address, or a Unix socket's name
        return False
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def _refusal():
    """Why this request may not read /metrics (a response), or None when it may."""
    token = current_app.config.get("IAM_METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        return Response("metrics need Authorization: Bearer <IAM_METRICS_TOKEN>\n", 401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if not _loopback(request.remote_addr) or any(name in request.headers for name in PROXY_HEADERS):
        return Response("metrics are served to loopback clients only (or set IAM_METRICS_TOKEN)\n", 403,
                        mimetype="text/plain")
    return None


def metrics():
    refusal = _refusal()
    if refusal is not None:
        return refusal
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


# The access log's format: the line alone (its JSON document, ready for a log shipper).
_PLAIN = logging.Formatter("%(message)s")


class BackgroundLineHandler(logging.Handler):
    """Writes each record's line to a stream (stderr) from a thread of its own, in batches.

    A request only formats its line and puts it on a queue. Writing it from the request's
    thread cost a system call per request and, worse, a hand-over of the GIL to the server's
    other threads while the write ran (a third of `GET /accounts/me`'s CPU in a gunicorn
    worker with four threads). The writer thread takes every line waiting and writes them
    together, in writes of at most PIPE_BUF bytes cut at line ends, so lines of several
    workers sharing one pipe never interleave. Lines are written in order; what is queued
    when the process exits is written first (atexit), and a worker forked from a process
    that had a writer starts its own."""

    CHUNK = 4096  # PIPE_BUF on Linux: a write to a pipe up to this size is never split
    # Lines waiting at most. When the stream stalls (a log shipper that stopped reading the
    # pipe), requests go on and lines beyond this are dropped and counted, instead of the
    # queue growing without bound; the writer reports how many in a line of its own.
    MAX_QUEUED = 10_000

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self._pid = None
        self._queue = None
        self._thread = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def emit(self, record):
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler: report, never raise into the request
            self.handleError(record)
            return
        self.put(line)

    def put(self, line):
        """Queue one formatted line."""
        if self._pid != os.getpid():
            self._start()
        if self._queue.qsize() >= self.MAX_QUEUED:
            self.dropped += 1
            return
        self._queue.put(line)

    def _start(self):
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._write_forever, args=(self._queue,),
                                            name="iam-access-log", daemon=True)
            self._thread.start()
            self._pid = os.getpid()
            atexit.register(self.close)

    def _write_forever(self, lines):
        while True:
            line = lines.get()
            if line is None:
                return
            batch = [line]
            while len(batch) < 1000:
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    break
                if line is None:
                    self._write(batch)
                    return
                batch.append(line)
            self._write(batch)

    def _write(self, batch):
        dropped, self.dropped = self.dropped, 0
        if dropped:
            batch.append(orjson.dumps({"event": "access_log_lines_dropped", "lines": dropped}).decode())
        chunk, size = [], 0
        try:
            for line in batch:
                if chunk and size + len(line) + 1 > self.CHUNK:
                    self.stream.write("".join(chunk))
                    self.stream.flush()
                    chunk, size = [], 0
                chunk.append(line + "\n")
                size += len(line) + 1
            if chunk:
                self.stream.write("".join(chunk))
                self.stream.flush()
        except Exception:  # noqa: BLE001 - a closed or full stream loses lines, never the writer
            pass

    def close(self):
        """Write what is queued and stop the writer (at exit; idempotent)."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
        super().close()


def init_app(app):
    if not app.testing and not access_log.handlers:
        # Each line is the JSON document alone, ready for a log shipper.
        handler = BackgroundLineHandler()
        handler.setFormatter(_PLAIN)
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    app.before_request(_start)
    app.after_request(_finish)
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
