"""Start-up under many processes: real gunicorn masters whose workers all boot at once on a new
database with the bootstrap admin configured.

With IAM_PRELOAD_APP=0 every worker imports the app and so runs the bootstrap; a worker that
raises while booting makes gunicorn's master exit ("Worker failed to boot"), and the port is
dead. With the shipped settings the master loads the app once and forks the workers. Each
case polls /healthz while the workers boot (every answer must be 200, the master must stay
up), waits until each bootstrap has logged what it did, then looks in the database: exactly
one admin, who can log in.
"""
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from iam import create_app
from iam.extensions import db
from iam.models import Account
from tests.conftest import PG_URL
from tests.helpers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMAIL = "boot@example.com"
PASSWORD = "bootstrap password"
WORKERS = 4
BOOT_DEADLINE = 30  # seconds for every worker to boot, on a busy machine


def _gunicorn_supports(setting):
    from gunicorn.config import KNOWN_SETTINGS
    return any(s.name == setting for s in KNOWN_SETTINGS)


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def fresh_database(request, tmp_path):
    """The URL of a new, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'startup.db'}"
        return
    schema = f"iam_startup_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


class Database:
    """The test's own view of the database the server uses."""

    def __init__(self, url):
        self.app = create_app({"TESTING": True, "IAM_DATABASE_URL": url})

    def migrate(self):
        with self.app.app_context():
            upgrade()
            db.engine.dispose()

    def add_account(self, email):
        """An account without roles, as if it had been made before anyone was an admin."""
        with self.app.app_context():
            db.session.add(Account(email=email, account_type="local_account", auth_type="password", enabled=True))
            db.session.commit()
            db.session.remove()
            db.engine.dispose()

    def count(self, sql):
        with self.app.app_context():
            try:
                return db.session.execute(text(sql)).scalar()
            finally:
                db.session.remove()
                db.engine.dispose()


class Gunicorn:
    """A gunicorn master started as an operator would, its log in a file."""

    def __init__(self, url, tmp_path, config_file=False, extra_args=""):
        self.port = free_port()
        # The shipped settings preload the app in the master (one bootstrap). The other cases
        # turn that off (gunicorn reads ./gunicorn.conf.py unless told another file): each
        # worker loads the app, and bootstraps, itself, all at once.
        self.bootstraps = 1 if config_file else WORKERS
        self.log_path = tmp_path / "gunicorn.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IAM_", "PROMETHEUS_", "GUNICORN_"))}
        env.update({
            "IAM_DATABASE_URL": url,
            "IAM_SECRET_KEY": "startup-test-secret-key-0123456789-abcdefghij",
            "IAM_BOOTSTRAP_ADMIN_EMAIL": EMAIL,
            "IAM_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
            "IAM_INSTANCE_PATH": str(tmp_path / "instance"),
            "IAM_ACCESS_LOG": "0",
            "IAM_LOG_LEVEL": "DEBUG",  # each worker's bootstrap says what it did, even "nothing"
        })
        command = [sys.executable, "-m", "gunicorn"]
        if config_file:  # the shipped settings; worker count and address from the environment
            env.update({"IAM_BIND": f"127.0.0.1:{self.port}", "IAM_WORKERS": str(WORKERS), "IAM_THREADS": "2"})
            command += ["-c", "gunicorn.conf.py"]
        if extra_args:
            env["GUNICORN_CMD_ARGS"] = extra_args  # applied over the config file
        else:
            env["IAM_PRELOAD_APP"] = "0"
            command += ["-w", str(WORKERS), "-b", f"127.0.0.1:{self.port}"]
        if _gunicorn_supports("control_socket_disable"):
            command.append("--no-control-socket")  # not the one shared path under $HOME
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command + ["wsgi:app"], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self):
        with open(self.log_path) as fh:
            return fh.read()

    def bootstrap_lines(self):
        return [line for line in self.output().splitlines() if ":iam.bootstrap:" in line]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the workers are idle: as quick as SIGINT
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def watch_boot(self):
        """Poll /healthz until every worker's bootstrap has logged its outcome, and a little
        longer; the master must be running throughout and every answer must be a 200."""
        deadline = time.monotonic() + BOOT_DEADLINE
        answered = settled = None
        while True:
            assert self.process.poll() is None, f"the gunicorn master exited:\n{self.output()[-4000:]}"
            try:
                # Until a worker has booted the request waits in the listen queue: that is no failure.
                status = requests.get(self.url + "/healthz", timeout=BOOT_DEADLINE).status_code
            except requests.ConnectionError:
                status = None
                assert answered is None, f"/healthz stopped answering:\n{self.output()[-4000:]}"
            if status is not None:
                assert status == 200, f"/healthz answered {status}:\n{self.output()[-4000:]}"
                answered = answered or time.monotonic()
            if settled is None and answered and len(self.bootstrap_lines()) >= self.bootstraps:
                settled = time.monotonic()
            if settled and time.monotonic() - settled > 1:
                break
            assert time.monotonic() < deadline, (
                f"the workers did not all boot in {BOOT_DEADLINE} s:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        output = self.output()
        for sign in ("Worker failed to boot", "Exception in worker process", "Traceback"):
            assert sign not in output, output[-4000:]
        return self.bootstrap_lines()


@pytest.fixture
def gunicorn(tmp_path):
    started = []

    def start(url, **options):
        server = Gunicorn(url, tmp_path, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _assert_one_admin_who_can_log_in(database, server):
    assert database.count("SELECT count(*) FROM account_roles WHERE name = 'admin'") == 1
    assert database.count(f"SELECT count(*) FROM accounts WHERE lower(email) = '{EMAIL}'") == 1
    response = requests.post(server.url + "/api/v3/iam/auth/login", json={"email": EMAIL, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["token"]


def test_workers_booting_together_create_exactly_one_admin(fresh_database, gunicorn):
    database = Database(fresh_database)
    database.migrate()
    server = gunicorn(fresh_database)
    lines = server.watch_boot()
    assert sum(f"bootstrap admin {EMAIL} created" in line for line in lines) == 1, lines
    assert not [line for line in lines if line.startswith(("ERROR", "WARNING"))], lines
    _assert_one_admin_who_can_log_in(database, server)


def test_the_shipped_config_starts_safely_even_when_the_account_exists(tmp_path, gunicorn):
    """`gunicorn -c gunicorn.conf.py`; the bootstrap email already has an account (no role). The
    shipped settings load the app once in the master, which gives that row its admin role once.
    (SQLite only, to keep this file quick; the workers' race without preloading is the first test's.)"""
    url = f"sqlite:///{tmp_path / 'startup.db'}"
    database = Database(url)
    database.migrate()
    database.add_account(EMAIL)
    server = gunicorn(url, config_file=True)
    lines = server.watch_boot()
    assert sum(f"bootstrap admin {EMAIL} created" in line for line in lines) == 1, lines
    _assert_one_admin_who_can_log_in(database, server)


def test_recycled_workers_of_the_preloaded_app_serve_on_connections_of_their_own(fresh_database, gunicorn):
    """The shipped settings preload the app: the master loads it (and its bootstrap opens
    database connections) and forks every worker from it, also each worker that replaces one
    recycled after max_requests (3 here). Every answer of many concurrent requests across
    many worker generations is right (no worker uses a connection of the master's: the
    bootstrap's pool is emptied, and gunicorn.conf.py's hooks forget any other); the app is
    loaded and the admin bootstrapped once; request ids never repeat across workers (a forked
    worker takes a prefix of its own: without it, every worker counted from the master's)."""
    database = Database(fresh_database)
    database.migrate()
    server = gunicorn(fresh_database, config_file=True, extra_args="--max-requests 3 --max-requests-jitter 0")
    lines = server.watch_boot()
    assert sum(f"bootstrap admin {EMAIL} created" in line for line in lines) == 1, lines
    login = requests.post(server.url + "/api/v3/iam/auth/login", json={"email": EMAIL, "password": PASSWORD},
                          timeout=30)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['meta']['token']}"}

    def client(_):
        # A new connection each request: spread over the workers, at the same time (workers
        # sharing a connection would interleave their statements on it), past their max_requests.
        answers = []
        for _ in range(10):
            answer = requests.get(server.url + "/api/v3/iam/accounts/me", headers=headers, timeout=30)
            answers.append((answer.status_code, answer.text, answer.headers.get("X-Request-ID")))
        return answers

    with ThreadPoolExecutor(8) as pool:
        answers = [answer for batch in pool.map(client, range(8)) for answer in batch]
    assert [(status, text) for status, text, _ in answers if status != 200] == []
    assert all(json.loads(text)["data"]["attributes"]["email"] == EMAIL for _, text, _ in answers)
    ids = [request_id for _, _, request_id in answers]
    assert len(set(ids)) == len(ids), ids
    output = server.output()
    assert output.count("Autorestarting worker after current request") >= 5, output[-3000:]
    assert len(server.bootstrap_lines()) == 1, server.bootstrap_lines()
    for sign in ("Worker failed to boot", "Exception in worker process", "Traceback"):
        assert sign not in output, output[-4000:]


def test_a_start_before_the_migrations_serves_and_creates_nothing(tmp_path, gunicorn):
    """No SQLite file yet: the workers create it together, find no tables, say so, and serve.
    (Two connections turning a new file to WAL at once can fail at once, busy timeout or not:
    that worker's bootstrap logs it and the worker serves all the same. On PostgreSQL an empty
    schema is only read: nothing to race on.)"""
    server = gunicorn(f"sqlite:///{tmp_path / 'new.db'}")
    lines = server.watch_boot()
    assert len(lines) == WORKERS and not [line for line in lines if f"{EMAIL} created" in line], lines
    assert any("run `flask --app wsgi db upgrade` first" in line for line in lines), lines


def _bootstrap_in_a_process(url, barrier, results):
    """One process starting: its own app, and the bootstrap held at the point where it has
    found no admin, until every process has got that far."""
    from iam.auth import passwords
    from iam.bootstrap import bootstrap_admin

    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(f"{record.levelname} {record.getMessage()}")
    logging.getLogger("iam.bootstrap").addHandler(handler)
    real_hash = passwords.hash_password

    def hash_after_everyone(password):  # called once a process has seen no admin
        barrier.wait(timeout=30)
        return real_hash(password)

    passwords.hash_password = hash_after_everyone
    try:
        app = create_app({"TESTING": True, "IAM_DATABASE_URL": url,
                          "IAM_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "IAM_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD})
        results.put(("returned", bootstrap_admin(app), records))
    except BaseException as error:  # noqa: BLE001 - what would have stopped a worker's boot
        results.put(("raised", f"{type(error).__name__}: {error}".splitlines()[0], records))


@pytest.mark.parametrize("account_exists", [False, True], ids=["new account", "existing account"])
def test_processes_that_all_found_no_admin_create_exactly_one(fresh_database, account_exists):
    """The race itself, made certain: every process has checked and found no admin before any
    of them goes on to create one."""
    database = Database(fresh_database)
    database.migrate()
    if account_exists:
        database.add_account(EMAIL)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    processes = [context.Process(target=_bootstrap_in_a_process, args=(fresh_database, barrier, results))
                 for _ in range(WORKERS)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    assert [o for o in outcomes if o[0] == "raised"] == [], outcomes
    assert sum(o[1] is not None for o in outcomes) == 1, outcomes
    assert not [line for o in outcomes for line in o[2] if line.startswith(("ERROR", "WARNING"))], outcomes
    assert database.count("SELECT count(*) FROM account_roles WHERE name = 'admin'") == 1
    assert database.count(f"SELECT count(*) FROM accounts WHERE lower(email) = '{EMAIL}'") == 1
