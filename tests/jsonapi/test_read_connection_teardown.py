"""The engine returns a GET's read connection to the pool when the request ends, by itself: an app
that embeds it (here the engine's own test app, which registers no teardown of its own) does not
leave connections to the garbage collector (a CI run once exhausted the pool that way)."""
import gc

from tests.jsonapi.conftest import PREFIX, db


def test_reads_leave_no_connection_checked_out(engine_app):
    client = engine_app.test_client()
    gc.disable()  # nothing may depend on the collector
    try:
        for _ in range(5):
            assert client.get(f"{PREFIX}/widgets").status_code == 200
        with engine_app.app_context():
            assert db.engine.pool.checkedout() == 0
    finally:
        gc.enable()
