"""Load: our server and the baseline under the same requests, side by side.

    python -m bench.load --database-url URL [--duration S] [--connections C] [--shapes a,b,...]
                         [--output FILE.json]
    python -m bench.load --database-url URL --soak 60 --connections 8

Starts our app (gunicorn with the project's gunicorn.conf.py) and the baseline
(bench/baseline.py, under the same gunicorn settings), each on 127.0.0.1 on a free port,
pointed at the benchmark database (seeded by `python -m bench.seed`) with a fresh signing
key they share. For each shape it first checks that both servers answer the same document
(parsed and compared; only the members a login makes anew are masked), then measures each
server for S seconds after a warm-up, with C concurrent keep-alive connections: one client
process per connection, each sending the next request as soon as the last answer is in
(a closed loop). Latency is measured by the client, from sending the request to having the
whole answer. Server CPU per request is read from /proc (gunicorn master and workers).

Soak mode holds C connections for S seconds on a mix of every shape against our server
only, and samples the RSS of every gunicorn worker, to show whether memory stays flat.

Every server started here is stopped before the command returns.
"""
import argparse
import base64
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import secrets
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter

from . import ADMIN_EMAIL, ADMIN_PASSWORD, API_PREFIX, ROOT, USER_PASSWORD, database_url_from, libpq_url

GOAL = 1.5  # issue 12: "every shape's p50 within 1.5x of the baseline"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ shapes

class Shape:
    def __init__(self, name, description, paths=None, method="GET", bodies=None):
        self.name, self.description, self.method = name, description, method
        self.paths = paths or []          # request targets (path + query), cycled through
        self.bodies = bodies or []        # POST bodies, cycled through (logins)

    @property
    def example(self):
        return self.paths[0] if self.paths else f"{API_PREFIX}/auth/login"


def discover(dsn):
    """What the shapes need from the seeded database: ids, an organization, a unit, login emails."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        admin = conn.execute("SELECT id FROM accounts WHERE lower(email) = %s", (ADMIN_EMAIL,)).fetchone()
        if admin is None:
            raise SystemExit(f"no {ADMIN_EMAIL} in this database: seed it first (python -m bench.seed)")
        accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
        organization = conn.execute(
            "SELECT organization_id FROM accounts WHERE organization_id IS NOT NULL "
            "GROUP BY organization_id ORDER BY count(*) DESC, organization_id LIMIT 1").fetchone()[0]
        unit = conn.execute("SELECT id FROM organizational_units WHERE organization_id = %s AND parent_id IS NULL "
                            "ORDER BY id LIMIT 1", (organization,)).fetchone()[0]
        ids = [row[0] for row in conn.execute("SELECT id FROM accounts WHERE person_id IS NOT NULL ORDER BY id")]
        # Logins go to the newest accounts, so the first pages the list shapes read do not change.
        emails = [row[0] for row in conn.execute(
            "SELECT email FROM accounts WHERE enabled AND auth_type = 'password' AND locked_until IS NULL "
            "AND (expires_at IS NULL OR expires_at > now()) AND person_id IS NOT NULL "
            "ORDER BY id DESC LIMIT 256")]
        # The deep page (page[number]=500 of 100, or the last page of a smaller database), and
        # its cursor: the last id of the page before it (id order, every account).
        deep = max(1, min(500, len(ids) // 100))
        before_deep = conn.execute("SELECT id FROM accounts ORDER BY id OFFSET %s LIMIT 1",
                                   (max(0, (deep - 1) * 100 - 1),)).fetchone()[0] if deep > 1 else None
        version = conn.execute("SHOW server_version").fetchone()[0]
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    rng = random.Random(42)
    show_ids = rng.sample(ids, min(256, len(ids))) if ids else [admin[0]]
    return {"accounts": accounts, "users": len(ids), "admin_id": admin[0], "organization": organization, "unit": unit,
            "show_ids": show_ids, "login_emails": emails, "postgresql": version, "revision": revision,
            "deep": deep, "before_deep": before_deep}


def migrations_head():
    """The newest revision under migrations/versions (the one no other revision follows)."""
    revisions, parents = set(), set()
    folder = os.path.join(ROOT, "migrations", "versions")
    for name in os.listdir(folder):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as fh:
                text = fh.read()
            found = re.search(r'^revision\s*=\s*["\']([^"\']+)', text, re.M)
            parent = re.search(r'^down_revision\s*=\s*["\']([^"\']+)', text, re.M)
            if found:
                revisions.add(found.group(1))
            if parent:
                parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _cursor(last_id):
    """The app's opaque cursor for "after this id" ("" for the start), as clients get it in links.next."""
    if last_id is None:
        return ""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def build_shapes(facts, match="user777", role="auditor"):
    a = f"{API_PREFIX}/accounts"
    deep = facts["deep"]
    include = "included=roles,person,organization"
    shapes = [
        Shape("list", "page[size]=100, no include", [f"{a}?page[size]=100"]),
        Shape("list_include", f"page[size]=100, {include}", [f"{a}?page[size]=100&{include}"]),
        Shape("email_match", f"filter[email__match]={match}, sort=-created_at, page[size]=100",
              [f"{a}?filter[email__match]={match}&sort=-created_at&page[size]=100"]),
        Shape("sparse_1000", "fields[accounts]=email,enabled, page[size]=1000",
              [f"{a}?fields[accounts]=email,enabled&page[size]=1000"]),
        Shape("show_include", f"GET /accounts/:id?{include} ({len(facts['show_ids'])} ids in turn)",
              [f"{a}/{i}?{include}" for i in facts["show_ids"]]),
        Shape("count", f"filter[enabled]=true&filter[organization_id]={facts['organization']}&count=true, "
                       "page[size]=25",
              [f"{a}?filter[enabled]=true&filter[organization_id]={facts['organization']}&count=true&page[size]=25"]),
        Shape("deep_page", f"page[number]={deep}&page[size]=100" + (" (the last page: fewer than 50,000 rows)"
                                                                   if deep < 500 else ""),
              [f"{a}?page[number]={deep}&page[size]=100"]),
        Shape("cursor_page", "page[after]=<cursor>&page[size]=100: the deep page's rows, by cursor",
              [f"{a}?page[after]={_cursor(facts['before_deep'])}&page[size]=100"]),
        Shape("role_name", f"filter[role_name]={role}, page[size]=100",
              [f"{a}?filter[role_name]={role}&page[size]=100"]),
        Shape("ou_accounts", f"filter[ou_accounts]={facts['unit']} (a root unit), page[size]=100",
              [f"{a}?filter[ou_accounts]={facts['unit']}&page[size]=100"]),
        Shape("me", "GET /accounts/me", [f"{a}/me"]),
        Shape("login", f"POST /auth/login ({len(facts['login_emails'])} accounts in turn, Argon2id)", method="POST",
              bodies=[json.dumps({"email": e, "password": USER_PASSWORD}).encode() for e in facts["login_emails"]]),
    ]
    return shapes


# ------------------------------------------------------------------ servers

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn_flags():
    """--no-control-socket where gunicorn has it (its default socket path is shared by every server)."""
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    out = subprocess.run([gunicorn, "--help"], capture_output=True, text=True).stdout
    return [gunicorn], (["--no-control-socket"] if "--no-control-socket" in out else [])


class Server:
    """A gunicorn master (and its workers) we started; stop() ends them."""

    def __init__(self, name, app, env, workdir, extra_args=()):
        self.name, self.port = name, free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        command, flags = _gunicorn_flags()
        # TMPDIR: gunicorn.conf.py makes a temporary directory each time it is read, even when
        # PROMETHEUS_MULTIPROC_DIR is set; inside our work directory it goes away with it.
        self.env = {**os.environ, **env, "IAM_BIND": f"127.0.0.1:{self.port}", "TMPDIR": workdir,
                    "PROMETHEUS_MULTIPROC_DIR": os.path.join(workdir, f"metrics-{name}")}
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [*command, "-c", os.path.join(ROOT, "gunicorn.conf.py"), *flags, *extra_args, app],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, workers, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited at start-up; see {self.log_path}:\n" + self.tail())
            try:
                status, _, _ = http_call(self.port, "GET", f"{API_PREFIX}/accounts/me")
                if status == 401 and len(self.worker_pids()) >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer within {timeout} s; see {self.log_path}:\n" + self.tail())

    def notable(self, limit=20):
        """Lines of the server's log worth a look: worker boots and exits, timeouts, errors."""
        keep = re.compile(r"Booting worker|Worker exiting|WORKER TIMEOUT|exited with|ERROR|CRITICAL|Traceback|Error:")
        try:
            with open(self.log_path, "rb") as fh:
                lines = [text.rstrip() for text in (raw.decode(errors="replace") for raw in fh) if keep.search(text)]
        except OSError:
            return []
        return lines[-limit:]

    def tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as fh:
                return b"".join(fh.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def worker_pids(self):
        return children(self.process.pid)

    def pids(self):
        return [self.process.pid, *self.worker_pids()]

    def stop(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                            found.append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return found


def cpu_seconds(pids, reaped=False):
    """CPU seconds the processes used themselves (utime + stime), or with `reaped` the CPU
    seconds of their children that exited and were waited for (cutime + cstime)."""
    total = 0.0
    first = 13 if reaped else 11
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[first]) + int(fields[first + 1])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ------------------------------------------------------------------ a minimal keep-alive HTTP/1.1 client

class Closed(Exception):
    """The server closed the connection before any byte of the answer."""


def request_bytes(method, target, port, token=None, body=None):
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: application/vnd.api+json",
             "User-Agent: bench.load"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Connection:
    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b""

    def open(self):
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionResetError("closed by the server")
        return data

    def exchange(self, raw, keep_body=False):
        """(status, body or its length, server wants to close)."""
        if self.sock is None:
            self.open()
        self.sock.sendall(raw)
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            data = self.sock.recv(262144)
            if not data:
                if not buf:
                    raise Closed()
                raise ConnectionResetError("closed mid-answer")
            buf += data
        head = buf[:end].lower()
        rest = buf[end + 4:]
        status = int(head[9:12])
        close = b"\r\nconnection: close" in head
        chunks = [rest]
        have = len(rest)
        if b"\r\ntransfer-encoding: chunked" in head:
            body = self._read_chunked(rest)
            self.buf = b""
            return status, (body if keep_body else len(body)), close
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
        length = int(match.group(1)) if match else 0
        while have < length:
            data = self._recv()
            chunks.append(data)
            have += len(data)
        body = b"".join(chunks)
        self.buf = body[length:]
        return status, (body[:length] if keep_body else length), close

    def _read_chunked(self, data):
        out = []
        while True:
            while b"\r\n" not in data:
                data += self._recv()
            line, data = data.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(data) < size + 2:
                data += self._recv()
            if size == 0:
                return b"".join(out)
            out.append(data[:size])
            data = data[size + 2:]


def http_call(port, method, target, token=None, body=None):
    """One request on a fresh connection: (status, parsed JSON or None, raw body)."""
    conn = Connection(port)
    try:
        status, raw, _ = conn.exchange(request_bytes(method, target, port, token, body), keep_body=True)
    finally:
        conn.close()
    try:
        return status, json.loads(raw) if raw else None, raw
    except ValueError:
        return status, None, raw


def login(port, email=ADMIN_EMAIL, password=ADMIN_PASSWORD):
    status, document, raw = http_call(port, "POST", f"{API_PREFIX}/auth/login",
                                      body=json.dumps({"email": email, "password": password}).encode())
    if status != 200:
        raise SystemExit(f"login as {email} on port {port} failed: {status} {raw[:300]!r}")
    return document["meta"]["token"], document


# ------------------------------------------------------------------ load

def _client(port, requests, offset, start_at, record_from, end_at, results):
    """One connection in a closed loop; sends its figures back through `results`."""
    conn = Connection(port)
    latencies = array("d")
    statuses = Counter()
    errors, reconnects, received, i = 0, 0, 0, offset
    n = len(requests)
    try:
        conn.open()
    except OSError:
        errors += 1
    while time.monotonic() < start_at:
        time.sleep(0.001)
    perf = time.perf_counter
    while True:
        raw = requests[i % n]
        i += 1
        t0 = perf()
        if t0 >= end_at:
            break
        try:
            try:
                status, length, close = conn.exchange(raw)
            except Closed:  # a keep-alive connection the server closed (idle, or a worker recycled)
                reconnects += 1
                conn.open()
                status, length, close = conn.exchange(raw)
        except OSError:
            errors += 1
            conn.close()
            time.sleep(0.01)
            continue
        t1 = perf()
        if close:
            conn.close()
        if t0 >= record_from:
            latencies.append(t1 - t0)
            statuses[status] += 1
            received += length
    conn.close()
    times = os.times()
    results.put({"latencies": latencies.tobytes(), "statuses": dict(statuses), "errors": errors,
                 "reconnects": reconnects, "bytes": received, "cpu": times.user + times.system})


def run_load(server, per_connection, duration, warmup, sample_every=None, on_sample=None):
    """Closed-loop load on `server`, one client process per list of requests in `per_connection`;
    figures for the `duration` seconds after `warmup`."""
    connections = len(per_connection)
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    setup = 0.3 + 0.02 * connections
    start_at = time.monotonic() + setup
    record_from = start_at + warmup
    end_at = record_from + duration
    processes = [ctx.Process(target=_client, args=(server.port, requests, k * 7919, start_at, record_from, end_at,
                                                   results), daemon=True)
                 for k, requests in enumerate(per_connection)]
    for process in processes:
        process.start()
    while time.monotonic() < record_from:
        time.sleep(0.005)
    pids = server.pids()
    per_pid_before = {pid: cpu_seconds([pid]) for pid in pids}
    reaped_before = cpu_seconds([server.process.pid], reaped=True)
    wall_before = time.monotonic()
    samples = []
    while time.monotonic() < end_at:
        if sample_every and on_sample:
            samples.append(on_sample(time.monotonic() - record_from))
            time.sleep(max(0.0, min(sample_every, end_at - time.monotonic())))
        else:
            time.sleep(min(0.05, max(0.0, end_at - time.monotonic())))
    per_pid_after = {pid: cpu_seconds([pid]) for pid in server.pids()}
    # Workers that gunicorn recycled meanwhile (max_requests) are gone from /proc, but the
    # master reaped them: their whole lifetime's CPU moved into its children's times. So the
    # server's CPU over the window is what the live processes show now, plus what the master
    # reaped meanwhile, minus what every process had used when the window opened.
    cpu_before = sum(per_pid_before.values())
    cpu_after = sum(per_pid_after.values()) + cpu_seconds([server.process.pid], reaped=True) - reaped_before
    common = per_pid_before.keys() & per_pid_after.keys()
    worker_cpu = sorted((round(per_pid_after[p] - per_pid_before[p], 2) for p in common
                         if p != server.process.pid), reverse=True)
    wall = time.monotonic() - wall_before
    if sample_every and on_sample:
        samples.append(on_sample(time.monotonic() - record_from))
    gathered = [results.get(timeout=duration + 120) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    latencies = array("d")
    statuses, errors, reconnects, received, client_cpu = Counter(), 0, 0, 0, 0.0
    for item in gathered:
        part = array("d")
        part.frombytes(item["latencies"])
        latencies.extend(part)
        statuses.update(item["statuses"])
        errors += item["errors"]
        reconnects += item["reconnects"]
        received += item["bytes"]
        client_cpu += item["cpu"]
    figures = summarize(latencies, duration)
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    figures.update({
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "non_2xx": figures["requests"] - ok,
        "socket_errors": errors, "reconnects": reconnects,
        "bytes_per_request": round(received / max(1, len(latencies))),
        "server_cpu_ms_per_request": round(1000 * (cpu_after - cpu_before) / max(1, len(latencies)), 3),
        "server_cpu_cores": round((cpu_after - cpu_before) / max(wall, 1e-9), 2),
        "client_cpu_cores": round(client_cpu / (duration + warmup + setup), 2),
        # CPU seconds of each worker during the measurement, busiest first: how evenly gunicorn spread the load.
        "worker_cpu_seconds": worker_cpu,
    })
    if samples:
        figures["samples"] = samples
    return figures


def summarize(latencies, duration):
    values = sorted(latencies)
    n = len(values)

    def pct(p):
        return values[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000 if n else None

    return {"requests": n, "rps": round(n / duration, 1) if duration else None,
            "p50_ms": _r(pct(50)), "p90_ms": _r(pct(90)), "p99_ms": _r(pct(99)),
            "max_ms": _r(values[-1] * 1000 if n else None), "mean_ms": _r(sum(values) / n * 1000 if n else None)}


def _r(value):
    return None if value is None else round(value, 2)


def shape_requests(shape, server, tokens):
    """One list of requests per connection. Each connection is one client with a session of its own
    (`tokens`, one per connection), and logins spread the accounts over the connections, so no two
    connections ever use one session or log one account in at the same time."""
    connections = len(tokens)
    if shape.method == "POST":
        login_requests = [request_bytes("POST", f"{API_PREFIX}/auth/login", server.port, body=body)
                          for body in shape.bodies]
        return [login_requests[k::connections] or login_requests for k in range(connections)]
    return [[request_bytes("GET", path, server.port, token) for path in shape.paths] for token in tokens]


def session_tokens(server, connections, shared=False):
    """An access token per connection (a fresh login each), or one token for all with `shared`."""
    if shared:
        return [login(server.port)[0]] * connections
    return [login(server.port)[0] for _ in range(connections)]


# ------------------------------------------------------------------ verification

LOGIN_VOLATILE = re.compile(r"/account_sessions/\d+")


def normalize(document, origin):
    """The document with the server's own origin replaced, so two servers' documents compare."""
    text = json.dumps(document).replace(origin, "{origin}")
    return json.loads(text)


def mask_login(document):
    """A login's document with what every login makes anew (session id, times, tokens) masked."""
    document = json.loads(LOGIN_VOLATILE.sub("/account_sessions/{id}", json.dumps(document)))
    data = document.get("data") or {}
    if "id" in data:
        data["id"] = "{id}"
    for name in ("created_at", "last_used_at", "expires_at", "auth_time"):
        if name in data.get("attributes", {}):
            data["attributes"][name] = "{time}"
    for name in ("token", "expires_at", "refresh_token", "refresh_expires_at"):
        if name in document.get("meta", {}):
            document["meta"][name] = "{" + name + "}"
    return document


def differences(a, b, path="$", out=None, limit=20):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if type(a) is not type(b):
        out.append(f"{path}: ours {_short(a)} / baseline {_short(b)}")
    elif isinstance(a, dict):
        if list(a) != list(b) and set(a) == set(b):
            pass  # member order is not part of a JSON object
        for key in list(a) + [k for k in b if k not in a]:
            if key not in b:
                out.append(f"{path}.{key}: only in ours")
            elif key not in a:
                out.append(f"{path}.{key}: only in the baseline")
            else:
                differences(a[key], b[key], f"{path}.{key}", out, limit)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items in ours, {len(b)} in the baseline")
        for index, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{path}[{index}]", out, limit)
    elif a != b:
        out.append(f"{path}: ours {_short(a)} / baseline {_short(b)}")
    return out


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _claims(token):
    import base64
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def verify(shape, ours, baseline, tokens):
    """Compare both servers' documents for one request of the shape; a list of differences."""
    if shape.method == "POST":
        body = shape.bodies[0]
        results = []
        for server in (ours, baseline):
            status, document, raw = http_call(server.port, "POST", f"{API_PREFIX}/auth/login", body=body)
            results.append((status, document, raw))
        problems = _status_problems(results)
        if problems:
            return problems
        (_, mine, _), (_, theirs, _) = results
        found = differences(mask_login(normalize(mine, ours.origin)), mask_login(normalize(theirs, baseline.origin)))
        claims_mine, claims_theirs = _claims(mine["meta"]["token"]), _claims(theirs["meta"]["token"])
        if set(claims_mine) != set(claims_theirs) or claims_mine["sub"] != claims_theirs["sub"] \
                or claims_mine["exp"] - claims_mine["iat"] != claims_theirs["exp"] - claims_theirs["iat"]:
            found.append(f"token claims differ: ours {sorted(claims_mine)} / baseline {sorted(claims_theirs)}")
        # Each server's token must work on the other: the baseline issues real sessions.
        for issuer, user, document in ((baseline, ours, theirs), (ours, baseline, mine)):
            status, _, _ = http_call(user.port, "GET", f"{API_PREFIX}/accounts/me", document["meta"]["token"])
            if status != 200:
                found.append(f"a token from {issuer.name} is refused by {user.name}: {status}")
        return found
    found = []
    for target in shape.paths[:3]:
        results = [http_call(server.port, "GET", target, tokens[server.name]) for server in (ours, baseline)]
        problems = _status_problems(results)
        if problems:
            return problems
        found += [f"{target}: {line}" if len(shape.paths) > 1 else line for line in
                  differences(normalize(results[0][1], ours.origin), normalize(results[1][1], baseline.origin))]
    return found


def _status_problems(results):
    (s1, d1, r1), (s2, d2, r2) = results
    problems = []
    if s1 != 200:
        problems.append(f"ours answered {s1}: {r1[:300]!r}")
    if s2 != 200:
        problems.append(f"the baseline answered {s2}: {r2[:300]!r}")
    if not problems and (d1 is None or d2 is None):
        problems.append("an answer is not JSON")
    return problems


# ------------------------------------------------------------------ reporting

def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def _fmt(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def print_table(rows):
    header = (f"{'shape':<13} {'ours r/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'base r/s':>9} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'p50 x':>6} {'r/s x':>6} {'cpu/req ms':>11} {'goal':>5}")
    print(header)
    print("-" * len(header))
    for row in rows:
        ours, base = row.get("ours") or {}, row.get("baseline") or {}
        cpu = "-"
        if ours and base:
            cpu = f"{_fmt(ours.get('server_cpu_ms_per_request'), '.2f')}/" \
                  f"{_fmt(base.get('server_cpu_ms_per_request'), '.2f')}"
        print(f"{row['shape']:<13} {_fmt(ours.get('rps')):>9} {_fmt(ours.get('p50_ms'), '.2f'):>8} "
              f"{_fmt(ours.get('p99_ms'), '.2f'):>8} {_fmt(base.get('rps')):>9} {_fmt(base.get('p50_ms'), '.2f'):>8} "
              f"{_fmt(base.get('p99_ms'), '.2f'):>8} {_fmt(row.get('p50_ratio'), '.2f'):>6} "
              f"{_fmt(row.get('rps_ratio'), '.2f'):>6} {cpu:>11} {row.get('verdict', '-'):>5}")


MEDIAN_KEYS = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "server_cpu_ms_per_request",
               "server_cpu_cores", "client_cpu_cores", "bytes_per_request")


def median_figures(runs):
    """One server's figures for a shape from its rounds: the median of each figure, the sums of
    requests and errors (an error in any round counts), and every round as it was."""
    if len(runs) == 1:
        return runs[0]
    merged = {key: _r(statistics.median(run[key] for run in runs)) for key in MEDIAN_KEYS
              if all(run.get(key) is not None for run in runs)}
    statuses = Counter()
    for run in runs:
        statuses.update({int(k): v for k, v in run["statuses"].items()})
    merged.update({"requests": sum(run["requests"] for run in runs),
                   "non_2xx": sum(run["non_2xx"] for run in runs),
                   "socket_errors": sum(run["socket_errors"] for run in runs),
                   "reconnects": sum(run["reconnects"] for run in runs),
                   "statuses": {str(k): v for k, v in sorted(statuses.items())},
                   "worker_cpu_seconds": runs[len(runs) // 2]["worker_cpu_seconds"],
                   "rounds": runs})
    return merged


def judge(row):
    ours, base = row.get("ours"), row.get("baseline")
    if not ours or not base or not ours.get("p50_ms") or not base.get("p50_ms"):
        return row
    row["p50_ratio"] = round(ours["p50_ms"] / base["p50_ms"], 2)
    row["rps_ratio"] = round(base["rps"] / ours["rps"], 2) if ours["rps"] else None
    clean = ours["non_2xx"] == 0 and ours["socket_errors"] == 0 and base["non_2xx"] == 0 and base["socket_errors"] == 0
    within = row["p50_ratio"] <= GOAL
    row["verdict"] = "PASS" if within and clean and not row.get("mismatch") else "FAIL"
    return row


# ------------------------------------------------------------------ main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="the seeded benchmark database (default: $IAM_DATABASE_URL)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per shape and server (10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per shape, the servers interleaved; the figures are their medians (3)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each measurement (2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (8)")
    parser.add_argument("--shapes", help="comma-separated shape names (default: all); see --list-shapes")
    parser.add_argument("--list-shapes", action="store_true", help="print the shapes and exit")
    parser.add_argument("--output", help="write every figure to this JSON file")
    parser.add_argument("--workers", type=int, help="IAM_WORKERS for both servers (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, help="IAM_THREADS for both servers (default: gunicorn.conf.py's)")
    parser.add_argument("--no-access-log", action="store_true",
                        help="IAM_ACCESS_LOG=0 for our server (default: on, as in production; to a file)")
    parser.add_argument("--gunicorn-arg", action="append", default=[], metavar="ARG",
                        help="an extra gunicorn command-line argument for both servers, e.g. "
                             "--gunicorn-arg=--worker-connections=4 (repeatable; for experiments)")
    parser.add_argument("--shared-session", action="store_true",
                        help="every connection uses one access token (one session) instead of one each")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the servers' logs (gunicorn and access logs) here")
    parser.add_argument("--no-verify", action="store_true", help="skip comparing the two servers' documents")
    parser.add_argument("--verify-only", action="store_true", help="compare the documents of every shape, no load")
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="soak mode: hold the load this long on a mix of shapes, our server only")
    parser.add_argument("--sample-every", type=float, default=5.0, help="soak: seconds between RSS samples (5)")
    parser.add_argument("--email-match", default="user777", help="the filter[email__match] value (user777)")
    parser.add_argument("--role-name", default="auditor", help="the filter[role_name] value (auditor)")
    return parser.parse_args(argv)


def server_env(args, url, secret):
    env = {"IAM_DATABASE_URL": url, "IAM_SECRET_KEY": secret, "IAM_ENV": "production",
           # Rate limits count in each process's memory (the app's default); logins count failures only.
           "IAM_RATELIMIT_STORAGE_URL": "memory://", "IAM_LOG_LEVEL": "WARNING",
           "IAM_BOOTSTRAP_ADMIN_EMAIL": "", "IAM_BOOTSTRAP_ADMIN_PASSWORD": ""}
    if args.workers:
        env["IAM_WORKERS"] = str(args.workers)
    if args.threads:
        env["IAM_THREADS"] = str(args.threads)
    return env


def expected_workers(args):
    if args.workers:
        return args.workers
    raw = os.environ.get("IAM_WORKERS")
    return int(raw) if raw else (os.cpu_count() or 1) * 2 + 1


def main(argv=None):
    args = parse_args(argv)
    url = database_url_from(args.database_url)
    facts = discover(libpq_url(url))
    shapes = build_shapes(facts, args.email_match, args.role_name)
    if args.list_shapes:
        for shape in shapes:
            print(f"{shape.name:<13} {shape.description}\n{'':<13} e.g. {shape.example}")
        return 0
    if args.shapes:
        wanted = [s.strip() for s in args.shapes.split(",") if s.strip()]
        unknown = set(wanted) - {s.name for s in shapes}
        if unknown:
            raise SystemExit(f"unknown shapes: {', '.join(sorted(unknown))}; see --list-shapes")
        shapes = [s for s in shapes if s.name in wanted]

    head = migrations_head()
    if head and facts["revision"] != head:
        print(f"WARNING: the database is at migration {facts['revision']}, the code at {head}: its indexes are "
              f"not those of the code under test. Re-seed it (python -m bench.seed --reset ...) or upgrade it "
              f"(IAM_DATABASE_URL=... flask --app wsgi db upgrade).", file=sys.stderr)
    workdir = tempfile.mkdtemp(prefix="iam-bench-")
    secret = secrets.token_urlsafe(48)
    env = server_env(args, url, secret)
    servers = []
    info = {"machine": machine(), "postgresql": facts["postgresql"], "accounts": facts["accounts"],
            "connections": args.connections, "duration": args.duration, "warmup": args.warmup,
            "rounds": 1 if args.soak else args.rounds,
            "workers": expected_workers(args), "threads": args.threads or int(os.environ.get("IAM_THREADS", 4)),
            "access_log": not args.no_access_log, "gunicorn_args": args.gunicorn_arg,
            "migration": facts["revision"]}
    print(f"{facts['accounts']:,} accounts; {args.connections} connections; "
          f"{info['workers']} workers x {info['threads']} threads per server; "
          f"{os.cpu_count()} CPUs ({info['machine']['cpu']}); PostgreSQL {facts['postgresql']}")
    try:
        ours_env = dict(env)
        if args.no_access_log:
            ours_env["IAM_ACCESS_LOG"] = "0"
        ours = Server("ours", "wsgi:app", ours_env, workdir, args.gunicorn_arg)
        servers.append(ours)
        if args.soak:
            ours.wait_ready(info["workers"])
            result = soak(args, ours, shapes, info)
        else:
            baseline = Server("baseline", "bench.baseline:application", env, workdir, args.gunicorn_arg)
            servers.append(baseline)
            ours.wait_ready(info["workers"])
            baseline.wait_ready(info["workers"])
            result = compare(args, ours, baseline, shapes, info)
        if args.output:
            with open(args.output, "w") as fh:
                json.dump(result, fh, indent=2)
            print(f"figures written to {args.output}")
        return result.get("exit", 0)
    finally:
        for server in servers:
            server.stop()
            boots = [line for line in server.notable(limit=10 ** 6) if "Booting worker" in line]
            other = [line for line in server.notable() if "Booting worker" not in line]
            if len(boots) > info["workers"] or other:
                print(f"{server.name}'s log: {len(boots)} worker boots for {info['workers']} workers"
                      + "".join(f"\n    {line}" for line in other[-10:]))
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                shutil.copy(server.log_path, os.path.join(args.keep_logs, f"{server.name}.log"))
        shutil.rmtree(workdir, ignore_errors=True)


def compare(args, ours, baseline, shapes, info):
    rows, mismatches = [], 0
    for shape in shapes:
        tokens = {ours.name: login(ours.port)[0], baseline.name: login(baseline.port)[0]}
        row = {"shape": shape.name, "description": shape.description, "example": shape.example}
        if not args.no_verify:
            found = verify(shape, ours, baseline, tokens)
            row["mismatch"] = found
            if found:
                mismatches += 1
                print(f"  ! {shape.name}: the documents differ ({len(found)} differences):", flush=True)
                for line in found[:10]:
                    print(f"      {line}")
            else:
                print(f"  {shape.name:<13} same document from both servers", flush=True)
        if args.verify_only:
            rows.append(row)
            continue
        runs = {ours.name: [], baseline.name: []}
        for number in range(1, args.rounds + 1):
            # Interleaved: ours, the baseline, ours, ... so that a slow minute of the machine
            # weighs on both servers alike; each server's figures are the medians of its rounds.
            for server in (ours, baseline):
                tokens = ([None] * args.connections if shape.method == "POST"
                          else session_tokens(server, args.connections, args.shared_session))
                requests = shape_requests(shape, server, tokens)
                figures = run_load(server, requests, args.duration, args.warmup)
                runs[server.name].append(figures)
                bad = figures["non_2xx"] + figures["socket_errors"]
                label = f"{server.name} {number}/{args.rounds}" if args.rounds > 1 else server.name
                print(f"  {shape.name:<13} {label:<12} {figures['rps']:>8.1f} req/s  "
                      f"p50 {_fmt(figures['p50_ms'], '.2f')} ms  p99 {_fmt(figures['p99_ms'], '.2f')} ms  "
                      f"cpu {figures['server_cpu_ms_per_request']:.2f} ms/req"
                      f"  client {figures['client_cpu_cores']:.2f} cores  worker cpu s "
                      + "/".join(f"{c:.1f}" for c in figures["worker_cpu_seconds"])
                      + (f"  ERRORS {bad} {figures['statuses']}" if bad else ""), flush=True)
        for name, figures in runs.items():
            row[name] = median_figures(figures)
        rows.append(judge(row))
    if args.verify_only:
        print(f"shapes whose documents differ: {mismatches}")
        return {"info": info, "shapes": rows, "mismatched_shapes": mismatches, "exit": 1 if mismatches else 0}
    print()
    print_table(rows)
    errors = sum(r[s]["non_2xx"] + r[s]["socket_errors"] for r in rows for s in ("ours", "baseline"))
    print(f"\nerrors (non-2xx answers and socket errors): {errors}; shapes whose documents differ: {mismatches}")
    print("p50 x = our p50 / baseline p50; r/s x = baseline req/s / our req/s; cpu/req = gunicorn CPU ms per "
          "request, ours/baseline (PostgreSQL's not counted); goal: p50 x <= 1.5, no errors, same documents")
    return {"info": info, "shapes": rows, "errors": errors, "mismatched_shapes": mismatches,
            "exit": 1 if errors or mismatches else 0}


def soak(args, ours, shapes, info):
    tokens = session_tokens(ours, args.connections, args.shared_session)
    per_connection = [[] for _ in tokens]
    for shape in shapes:
        for k, batch in enumerate(shape_requests(shape, ours, tokens)):
            if shape.method == "POST":
                per_connection[k].extend(batch[:1])            # logins: one in the mix (Argon2 is costly)
            else:
                per_connection[k].extend((batch[:4] * 4)[:4])  # every other shape: four
    for k, requests in enumerate(per_connection):
        random.Random(k).shuffle(requests)
    requests = per_connection[0]
    warmup = max(args.warmup, 5.0)
    tracked = {}

    def sample(elapsed):
        point = {"t": round(elapsed, 1), "rss_kib": {}}
        for pid in ours.worker_pids():
            value = rss_kib(pid)
            if value is not None:
                point["rss_kib"][str(pid)] = value
                tracked.setdefault(pid, []).append(value)
        master = rss_kib(ours.process.pid)
        point["master_rss_kib"] = master
        print(f"  t={elapsed:6.1f}s  workers' RSS MiB: "
              + " ".join(f"{pid}:{kib / 1024:.1f}" for pid, kib in sorted(point["rss_kib"].items())), flush=True)
        return point

    print(f"soak: {args.soak:.0f} s, {args.connections} connections, {len(requests)} requests in the mix "
          f"({', '.join(s.name for s in shapes)}), RSS sampled every {args.sample_every:.0f} s after {warmup:.0f} s "
          f"of warm-up", flush=True)
    figures = run_load(ours, per_connection, args.soak, warmup, args.sample_every, sample)
    print()
    print(f"requests {figures['requests']:,}  ({figures['rps']} req/s)  p50 {figures['p50_ms']} ms  "
          f"p99 {figures['p99_ms']} ms  non-2xx {figures['non_2xx']}  socket errors {figures['socket_errors']}  "
          f"statuses {figures['statuses']}")
    print(f"{'worker':>8} {'start MiB':>10} {'end MiB':>9} {'max MiB':>9} {'growth MiB':>11} {'2nd half MiB':>13}")
    growth_total = late_total = 0.0
    workers = {}
    for pid, values in sorted(tracked.items()):
        growth = (values[-1] - values[0]) / 1024
        late = (values[-1] - values[len(values) // 2]) / 1024  # after the first half: warm-up allocations are done
        growth_total += growth
        late_total += late
        workers[str(pid)] = {"start_kib": values[0], "end_kib": values[-1], "max_kib": max(values),
                             "second_half_growth_kib": values[-1] - values[len(values) // 2], "samples": len(values)}
        print(f"{pid:>8} {values[0] / 1024:>10.1f} {values[-1] / 1024:>9.1f} {max(values) / 1024:>9.1f} "
              f"{growth:>+11.1f} {late:>+13.1f}"
              + ("" if len(values) == len(figures.get("samples", [])) else "  (not there all along)"))
    print(f"total growth over {len(tracked)} workers: {growth_total:+.1f} MiB, of which {late_total:+.1f} MiB in "
          f"the second half (a worker's first requests grow it once; a leak keeps growing)")
    errors = figures["non_2xx"] + figures["socket_errors"]
    print("errors: " + ("none" if not errors else f"{errors}  <- must be zero"))
    return {"info": info, "soak_seconds": args.soak, "figures": figures, "workers": workers,
            "growth_mib": round(growth_total, 2), "second_half_growth_mib": round(late_total, 2),
            "errors": errors, "exit": 1 if errors else 0}


if __name__ == "__main__":
    sys.exit(main())
