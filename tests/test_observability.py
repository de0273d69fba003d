"""Operations: JSON access logs without secrets, Prometheus metrics, the gunicorn configuration."""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, free_port

ROOT = Path(__file__).resolve().parent.parent


def access_lines(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "iam.access"]


def test_every_request_gets_one_json_access_line_without_secrets(app, admin, admin_account, caplog):
    caplog.set_level(logging.INFO, logger="iam.access")
    assert_jsonapi(admin.get("/accounts", {"filter[email__match]": "example", "page[size]": "10"}), 200)
    client = ApiClient(app.test_client())
    client.post("/auth/login", {"email": "admin@example.com", "password": PASSWORD})
    client.get("/account/passwords/token_valid", {"token": "a-secret-reset-token"})
    lines = access_lines(caplog)
    listed = next(line for line in lines if line["path"] == "/api/v3/iam/accounts")
    assert listed["status"] == 200 and listed["method"] == "GET" and listed["account_id"] == admin_account.id
    assert listed["query"] == {"filter[email__match]": "example", "page[size]": "10"}
    assert listed["endpoint"] == "/api/v3/iam/accounts" and listed["duration_ms"] >= 0 and listed["request_id"]
    checked = next(line for line in lines if line["path"].endswith("token_valid"))
    assert checked["query"] == {"token": "[redacted]"}
    text = caplog.text
    for secret in (PASSWORD, "a-secret-reset-token", admin.token):
        assert secret not in text


def test_request_ids_are_echoed(client):
    response = client.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert client.client.get("/healthz").headers["X-Request-ID"]


def test_metrics_count_requests_per_endpoint(app, admin, admin_account):
    for _ in range(3):
        assert_jsonapi(admin.get(f"/accounts/{admin_account.id}"), 200)
    body = app.test_client().get("/metrics").get_data(as_text=True)
    line = next(l for l in body.splitlines() if l.startswith("iam_requests_total{")
                and 'endpoint="/api/v3/iam/accounts/<int:id>"' in l and 'status="200"' in l and 'method="GET"' in l)
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert 'iam_request_duration_seconds_bucket{endpoint="/api/v3/iam/accounts/<int:id>"' in body


def test_metrics_can_require_a_token(app):
    app.config["IAM_METRICS_TOKEN"] = "scrape-me-please"
    try:
        assert app.test_client().get("/metrics").status_code == 401
        ok = app.test_client().get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
        assert ok.status_code == 200 and b"iam_requests_total" in ok.data
    finally:
        app.config["IAM_METRICS_TOKEN"] = ""


@contextmanager
def gunicorn_server(tmp_path, **env_overrides):
    """The app under gunicorn with the shipped config and two workers; yields (base URL, output list)."""
    port = free_port()
    env = {**os.environ, "IAM_ENV": "development", "IAM_DATABASE_URL": f"sqlite:///{tmp_path}/iam.db",
           "IAM_INSTANCE_PATH": str(tmp_path), "IAM_BIND": f"127.0.0.1:{port}", "IAM_WORKERS": "2",
           **env_overrides}
    env = {k: v for k, v in env.items() if v is not None}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", output
    finally:
        process.send_signal(signal.SIGTERM)
        output.append(process.communicate(timeout=30)[0].decode())


def test_gunicorn_serves_the_app_with_the_shipped_configuration(tmp_path):
    """Several workers behind the shipped config answer, and /metrics adds them up."""
    with gunicorn_server(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics")) as (base, output):
        for _ in range(6):
            assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        line = next(l for l in metrics.splitlines()
                    if l.startswith("iam_requests_total{") and 'endpoint="/healthz"' in l)
        assert float(line.rsplit(" ", 1)[1]) == 6.0
    assert "Booting worker" in output[0], output[0][-2000:]
    # The workers' access lines (written by their background writers) are all there, whole,
    # once the workers have stopped: the last ones were written at exit.
    lines = [json.loads(l) for l in output[0].splitlines() if l.startswith('{"request_id"')]
    assert [(l["path"], l["status"]) for l in lines].count(("/healthz", 200)) == 6, output[0][-3000:]


def test_the_access_log_writer_keeps_every_line_whole_and_in_order(tmp_path):
    """Eight threads log 2,000 lines each through one BackgroundLineHandler into a pipe: every
    line arrives once, whole, in each thread's order; every write fits in PIPE_BUF; close()
    writes what is still queued."""
    import threading

    from iam.observability import BackgroundLineHandler

    class Pipe:
        def __init__(self):
            self.writes = []

        def write(self, text):
            self.writes.append(text)

        def flush(self):
            pass

    pipe = Pipe()
    handler = BackgroundLineHandler(pipe)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.access-writer")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)

    def log(worker):
        for n in range(2000):
            logger.info(json.dumps({"worker": worker, "n": n, "pad": "x" * (n % 300)}))

    try:
        threads = [threading.Thread(target=log, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert all(len(write.encode()) <= BackgroundLineHandler.CHUNK and write.endswith("\n") for write in pipe.writes)
    assert len(pipe.writes) < 16000  # batched: fewer writes than lines
    lines = [json.loads(line) for line in "".join(pipe.writes).splitlines()]
    assert len(lines) == 16000
    for worker in range(8):
        assert [line["n"] for line in lines if line["worker"] == worker] == list(range(2000))


def test_gunicorn_takes_a_lowercase_log_level_and_cleans_up_its_metrics_directory(tmp_path):
    """IAM_LOG_LEVEL=warning boots (gunicorn and logging disagreed on case), and the private
    metrics directory made when PROMETHEUS_MULTIPROC_DIR is unset is gone after exit."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    with gunicorn_server(tmp_path, IAM_LOG_LEVEL="warning", TMPDIR=str(temp),
                         PROMETHEUS_MULTIPROC_DIR=None) as (base, output):
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert [p.name.startswith("iam-metrics-") for p in temp.iterdir()] == [True]
    assert list(temp.iterdir()) == [], output


def test_an_access_log_value_orjson_refuses_is_written_by_the_standard_library():
    # werkzeug hands over text without lone surrogates, but a log line must never fail a request
    from iam.observability import _json

    assert json.loads(_json({"path": "/a\udc80b", "status": 200})) == {"path": "/a\udc80b", "status": 200}
    assert _json({"path": "/x"}) == '{"path":"/x"}'


def test_a_stalled_access_log_stream_drops_and_counts_lines_instead_of_growing():
    """The stream stops taking writes (a log shipper that stopped reading): requests keep
    logging without blocking, the queue stays bounded, and once the stream moves again the
    writer says how many lines were dropped."""
    import threading

    from iam.observability import BackgroundLineHandler

    class StalledPipe:
        def __init__(self):
            self.flowing = threading.Event()
            self.writes = []

        def write(self, text):
            self.flowing.wait(timeout=30)
            self.writes.append(text)

        def flush(self):
            pass

    pipe = StalledPipe()
    handler = BackgroundLineHandler(pipe)
    handler.MAX_QUEUED = 50
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.access-stalled")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        started = time.monotonic()
        for n in range(500):
            logger.info(json.dumps({"n": n}))
        assert time.monotonic() - started < 5  # nothing waited on the stream
        assert handler._queue.qsize() <= 50
        pipe.flowing.set()
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = [json.loads(line) for line in "".join(pipe.writes).splitlines()]
    written = [line["n"] for line in lines if "n" in line]
    dropped = sum(line["lines"] for line in lines if line.get("event") == "access_log_lines_dropped")
    assert written == sorted(written) and len(written) < 500
    assert len(written) + dropped == 500


def test_a_sigterm_while_workers_boot_stops_the_server_at_once(tmp_path):
    """gunicorn's master signals its workers as soon as it is told to stop; a worker still booting
    ran with the master's handlers, lost the signal, and the stop waited graceful_timeout (30 s)
    for it (about one start in twelve here). gunicorn.conf.py's post_fork ends that window."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    for attempt in range(10):
        port = free_port()
        env = {**os.environ, "IAM_ENV": "development", "IAM_DATABASE_URL": f"sqlite:///{tmp_path}/iam{attempt}.db",
               "IAM_INSTANCE_PATH": str(tmp_path), "IAM_BIND": f"127.0.0.1:{port}", "IAM_WORKERS": "2",
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics{attempt}")}
        process = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.01)
        process.send_signal(signal.SIGTERM)  # the master listens; its workers may still be booting
        started = time.monotonic()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert time.monotonic() - started < 10, f"start {attempt}: the server took its graceful timeout to stop"
