"""Operations: one JSON access-log line per request, and Prometheus metrics at /metrics.

The access log never carries credentials: no headers are logged, and the values of query
parameters that can hold secrets (a reset token in token_valid, say) are replaced.
Metrics are labelled by URL rule (`/api/v3/iam/accounts/<int:id>`), not by URL, so their
number stays bounded. Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py does) so /metrics adds up every worker.
"""
import json
import logging
import os
import time
import uuid

from flask import Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

access_log = logging.getLogger("iam.access")
SECRET_PARAMETERS = frozenset({"token", "refresh_token", "password", "key", "api_key", "current_password",
                               "new_password", "access_token"})

REQUESTS = Counter("iam_requests_total", "HTTP requests answered.", ["method", "endpoint", "status"])
LATENCY = Histogram("iam_request_duration_seconds", "Time to answer an HTTP request.", ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def _endpoint():
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _query():
    return {key: ("[redacted]" if key.lower() in SECRET_PARAMETERS else values if len(values) > 1 else values[0])
            for key, values in request.args.lists()}


def _start():
    g.iam_started = time.perf_counter()
    g.iam_request_id = (request.headers.get("X-Request-ID") or uuid.uuid4().hex)[:64]


def _finish(response):
    started = g.pop("iam_started", None)
    if started is None:
        return response
    elapsed = time.perf_counter() - started
    endpoint = _endpoint()
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    LATENCY.labels(request.method, endpoint).observe(elapsed)
    response.headers["X-Request-ID"] = g.iam_request_id
    if current_app.config.get("IAM_ACCESS_LOG", True):
        principal = g.get("principal")
        access_log.info(json.dumps({
            "request_id": g.iam_request_id, "method": request.method, "path": request.path, "query": _query(),
            "endpoint": endpoint, "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
            "bytes": response.calculate_content_length(), "remote_addr": request.remote_addr,
            "user_agent": request.user_agent.string[:200] or None,
            "account_id": principal.account_id if principal is not None else None,
        }, separators=(",", ":")))
    return response


def metrics():
    token = current_app.config.get("IAM_METRICS_TOKEN")
    if token and request.headers.get("Authorization") != f"Bearer {token}":
        return Response("metrics need Authorization: Bearer <IAM_METRICS_TOKEN>\n", 401, mimetype="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def init_app(app):
    if not app.testing and not access_log.handlers:
        # Each line is the JSON document alone, ready for a log shipper.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    app.before_request(_start)
    app.after_request(_finish)
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
