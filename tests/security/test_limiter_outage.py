"""A rate-limit storage outage (Redis killed, Redis hung) never fails a request, and never
opens the door: counting moves to each process's memory with the same limits, and goes
back to Redis once it answers again. Each test runs its own redis-server and kills it."""
import logging
import os
import signal
import subprocess
import threading
import time

import pytest
import redis
from sqlalchemy import select

from iam.extensions import db
from iam.models import AccountSession
from tests.helpers import PASSWORD, ApiClient, assert_jsonapi, error_of, free_port

WRONG = "not the password at all"
FELL_BACK = "rate-limit storage unreachable"
RECOVERED = "rate-limit storage answers again"


class RedisServer:
    """A redis-server of this test's own, on a port of its own (never the shared 6379)."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
            finally:
                client.close()

    def kill(self):
        """SIGKILL, as an out-of-memory killer or a crashed host would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def pause(self):
        """SIGSTOP: the port still accepts connections, nothing ever answers (a hung Redis)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def keys(self):
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return client.keys("*")
        finally:
            client.close()


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def make_app(make_app):
    """Fresh app instances (as separate server processes would be) on the test's Redis: the
    suite's make_app, given the rate-limit storage and a login lock that never gets in the way."""
    def make(storage_url, **settings):
        return make_app(IAM_RATELIMIT_STORAGE_URL=storage_url, IAM_LOGIN_MAX_FAILURES=100, **settings)
    return make


@pytest.fixture
def limiter_log(caplog):
    """The warnings of iam.throttle, and every record that carries a traceback."""
    caplog.set_level(logging.INFO)

    class Log:
        def warnings(self, text):
            return [r for r in caplog.records
                    if r.name == "iam.throttle" and r.levelno == logging.WARNING and text in r.getMessage()]

        def tracebacks(self):
            return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]

    return Log()


def post(instance, path, body, address="127.0.0.1"):
    client = instance.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return ApiClient(client).post(path, body)


def login(instance, email, password, address="127.0.0.1"):
    return post(instance, "/auth/login", {"email": email, "password": password}, address)


def request_reset(instance, email="nobody@example.com", address="127.0.0.1"):
    # An address without an account: the background job then only reads, and cannot race
    # the test's logins for SQLite's write lock.
    return post(instance, "/account/passwords/request_reset", {"email": email}, address)


def assert_logged_in(response):
    meta = assert_jsonapi(response, 200)["meta"]
    assert meta["token"] and meta["refresh_token"] and meta["token_type"] == "Bearer"


def sessions_of(instance):
    with instance.app_context():
        return len(db.session.scalars(select(AccountSession)).all())


def wait_for(condition, timeout, poke):
    """Call poke() (a request: the limiter pings Redis on requests) until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the limiter did not go back to Redis"
        poke()
        time.sleep(0.25)


def test_with_redis_killed_logins_and_reset_requests_answer_as_usual(make_app, factory, redis_server, limiter_log):
    factory.account(email="ada@example.com")
    instance = make_app(redis_server.url)
    assert_logged_in(login(instance, "ada@example.com", PASSWORD))
    usual_401 = error_of(login(instance, "ada@example.com", WRONG), 401)
    assert redis_server.keys()  # counted in Redis while it is up

    redis_server.kill()
    responses = [login(instance, "ada@example.com", PASSWORD), login(instance, "ada@example.com", WRONG),
                 request_reset(instance), login(instance, "ada@example.com", PASSWORD),
                 request_reset(instance, "someone@example.com")]
    assert [r.status_code for r in responses] == [200, 401, 204, 200, 204]
    assert_logged_in(responses[0])
    assert_logged_in(responses[3])
    assert error_of(responses[1], 401) == usual_401
    assert responses[2].get_data() == b"" and responses[4].get_data() == b""
    # One warning line for the whole outage, no traceback, no error.
    assert len(limiter_log.warnings(FELL_BACK)) == 1
    assert "ConnectionError" in limiter_log.warnings(FELL_BACK)[0].getMessage()
    assert limiter_log.tracebacks() == []
    instance.extensions["iam_limiter"].reset()  # the storage's reset is safe too


def test_redis_dying_while_the_view_runs_does_not_fail_the_finished_request(make_app, factory, redis_server,
                                                                             limiter_log):
    """The limit is checked before the view and deducted after it (failed logins only): Redis
    dies in between, after the login has happened."""
    factory.account(email="ada@example.com")
    instance = make_app(redis_server.url, IAM_LOGIN_RATE_LIMIT="2 per minute")
    kill_after_the_view = threading.Event()

    @instance.after_request  # registered last, so it runs before the limiter's own after_request
    def kill_redis(response):
        if kill_after_the_view.is_set():
            kill_after_the_view.clear()
            redis_server.kill()
        return response

    kill_after_the_view.set()
    assert_logged_in(login(instance, "ada@example.com", PASSWORD))
    assert not kill_after_the_view.is_set() and redis_server.process.poll() is not None
    assert sessions_of(instance) == 1
    # A success is not counted, and no header is computed after the view: nothing asked Redis since.
    assert limiter_log.warnings(FELL_BACK) == []

    redis_server.start()
    assert_logged_in(login(instance, "ada@example.com", PASSWORD))
    kill_after_the_view.set()
    error_of(login(instance, "nobody@example.com", WRONG), 401)  # deducted after Redis died: in memory
    error_of(login(instance, "nobody@example.com", WRONG), 401)
    assert error_of(login(instance, "ada@example.com", PASSWORD), 429)["code"] == "rate_limited"
    assert len(limiter_log.warnings(FELL_BACK)) == 1 and limiter_log.tracebacks() == []


def test_the_limits_still_apply_per_process_while_redis_is_down(make_app, factory, redis_server, limiter_log):
    factory.account(email="ada@example.com")
    instance = make_app(redis_server.url, IAM_LOGIN_RATE_LIMIT="3 per minute", IAM_RESET_RATE_LIMIT="2 per minute")
    error_of(login(instance, "nobody@example.com", WRONG), 401)  # one failure counted in Redis
    redis_server.kill()

    for n in range(3):  # the count starts again in memory: three failures before the 429
        error_of(login(instance, f"nobody{n}@example.com", WRONG), 401)
    for _ in range(2):
        response = login(instance, "ada@example.com", PASSWORD)
        assert error_of(response, 429)["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) > 0
    assert_logged_in(login(instance, "ada@example.com", PASSWORD, address="10.1.2.3"))  # another client

    for _ in range(2):
        assert request_reset(instance).status_code == 204
    response = request_reset(instance)
    assert error_of(response, 429)["code"] == "rate_limited" and int(response.headers["Retry-After"]) > 0

    # reset() while Redis is down forgets the counts in memory, and raises nothing.
    instance.extensions["iam_limiter"].reset()
    assert_logged_in(login(instance, "ada@example.com", PASSWORD))
    assert len(limiter_log.warnings(FELL_BACK)) == 1 and limiter_log.tracebacks() == []


def test_counting_goes_back_to_redis_once_it_returns(make_app, factory, redis_server, limiter_log):
    """Two app instances count apart while Redis is down, and together again once it is back."""
    factory.account(email="ada@example.com")
    first, second = (make_app(redis_server.url, IAM_LOGIN_RATE_LIMIT="4 per minute") for _ in range(2))
    redis_server.kill()
    for n in range(3):  # 6 failures in all, but 3 per process: nobody is limited
        error_of(login(first, f"nobody{n}@example.com", WRONG), 401)
        error_of(login(second, f"nobody{n}@example.com", WRONG), 401)
    assert_logged_in(login(first, "ada@example.com", PASSWORD))
    assert_logged_in(login(second, "ada@example.com", PASSWORD))
    assert len(limiter_log.warnings(FELL_BACK)) == 2  # one per process

    redis_server.start()  # the same port, empty
    assert redis_server.keys() == []

    def poke():
        assert_logged_in(login(first, "ada@example.com", PASSWORD))
        assert_logged_in(login(second, "ada@example.com", PASSWORD))

    wait_for(lambda: len(limiter_log.warnings(RECOVERED)) == 2, 15, poke)
    # Back on Redis: the memory counts (3 each) no longer count, the two processes count together.
    for n in range(2):
        error_of(login(first, f"again{n}@example.com", WRONG), 401)
        error_of(login(second, f"again{n}@example.com", WRONG), 401)
    assert redis_server.keys()
    assert error_of(login(first, "ada@example.com", PASSWORD), 429)["code"] == "rate_limited"
    assert error_of(login(second, "ada@example.com", PASSWORD), 429)["code"] == "rate_limited"
    assert len(limiter_log.warnings(FELL_BACK)) == 2 and limiter_log.tracebacks() == []


def test_a_hung_redis_holds_no_request(make_app, factory, redis_server, limiter_log):
    """A Redis that accepts connections and never answers (SIGSTOP) costs a request about a
    second, not a hung worker; counting resumes in Redis once it answers again."""
    factory.account(email="ada@example.com")
    instance = make_app(redis_server.url)
    assert_logged_in(login(instance, "ada@example.com", PASSWORD))
    redis_server.pause()
    try:
        answers = []

        def attempts():
            answers.append(login(instance, "ada@example.com", PASSWORD))
            answers.append(login(instance, "ada@example.com", WRONG))
            answers.append(request_reset(instance))

        started = time.monotonic()
        worker = threading.Thread(target=attempts, daemon=True)
        worker.start()
        worker.join(timeout=15)
        assert not worker.is_alive(), "a request waited for the hung Redis"
        assert time.monotonic() - started < 10
        assert [r.status_code for r in answers] == [200, 401, 204]
        assert_logged_in(answers[0])
        assert "TimeoutError" in limiter_log.warnings(FELL_BACK)[0].getMessage()
    finally:
        redis_server.resume()
    wait_for(lambda: limiter_log.warnings(RECOVERED), 15, lambda: login(instance, "ada@example.com", PASSWORD))
    error_of(login(instance, "nobody@example.com", WRONG), 401)
    assert redis_server.keys()
    assert len(limiter_log.warnings(FELL_BACK)) == 1 and limiter_log.tracebacks() == []


def test_scim_refusals_count_through_a_redis_outage(make_app, admin, factory, redis_server, limiter_log):
    """SCIM's count of refused keys goes through the same outage-proof strategy: Redis dying fails no
    SCIM request, and the limit still applies (in memory), 429 with Retry-After."""
    from tests.scim.conftest import ScimClient, scim_error, scim_key
    key = scim_key(admin, factory, factory.organization(slug="acme"))
    instance = make_app(redis_server.url, IAM_LOGIN_RATE_LIMIT="2 per minute")
    good, wrong = ScimClient(instance.test_client(), key), ScimClient(instance.test_client(), "iam_no-such-key")
    assert good.get("/Users").status_code == 200
    scim_error(wrong.get("/Users"), 401)
    assert any(b"scim_auth" in name for name in redis_server.keys())  # counted in Redis while it is up

    redis_server.kill()
    assert good.get("/Users").status_code == 200
    for _ in range(2):  # the count starts again in memory
        scim_error(wrong.get("/Users"), 401)
    limited = good.get("/Users")
    scim_error(limited, 429)
    assert int(limited.headers["Retry-After"]) > 0
    assert len(limiter_log.warnings(FELL_BACK)) == 1 and limiter_log.tracebacks() == []
