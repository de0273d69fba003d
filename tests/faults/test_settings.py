"""The database timeouts as settings (issue 10, finding 9): defaults, the environment, and what
each dialect's connections are given."""
import pytest

from iam import config


def _options(url, **env):
    return config.engine_options(config.database_url(url, "/x"), env, {})


def test_postgresql_connections_get_statement_lock_and_connect_timeouts():
    options, timeouts = _options("postgresql://u@h/d")
    assert timeouts == {"statement": 10.0, "lock": 5.0, "connect": 5.0, "pool": 5.0}
    assert options["connect_args"] == {"options": "-c statement_timeout=10000 -c lock_timeout=5000 -c TimeZone=UTC",
                                       "connect_timeout": 5}
    assert options["pool_timeout"] == 5 and options["hide_parameters"] is True \
        and not options.get("pool_pre_ping")


def test_settings_come_from_the_environment_and_the_url_keeps_its_own_options():
    options, _ = _options("postgresql://u@h/d?options=-csearch_path%3Dapp", IAM_DB_STATEMENT_TIMEOUT="0",
                          IAM_DB_LOCK_TIMEOUT="1.5", IAM_DB_CONNECT_TIMEOUT="3", IAM_DB_POOL_TIMEOUT="2")
    assert options["connect_args"] == {"options": "-csearch_path=app -c statement_timeout=0 -c lock_timeout=1500 -c TimeZone=UTC",
                                       "connect_timeout": 3}
    assert options["pool_timeout"] == 2


def test_sqlite_waits_on_locks_for_the_lock_timeout():
    options, _ = _options("sqlite:////tmp/x.db", IAM_DB_LOCK_TIMEOUT="2", IAM_DB_POOL_TIMEOUT="0.5")
    assert options["connect_args"] == {"timeout": 2.0} and options["pool_timeout"] == 1  # whole seconds
    memory, _ = _options("sqlite://")
    assert "pool_timeout" not in memory  # one static connection: nothing to wait for


@pytest.mark.parametrize("name, value", [("IAM_DB_STATEMENT_TIMEOUT", "soon"), ("IAM_DB_STATEMENT_TIMEOUT", "-1"),
                                         ("IAM_DB_LOCK_TIMEOUT", "0"), ("IAM_DB_POOL_TIMEOUT", "nan")])
def test_a_bad_timeout_stops_the_server_at_start(name, value):
    with pytest.raises(config.ConfigError, match=name):
        _options("postgresql://u@h/d", **{name: value})


def test_the_config_shows_the_timeouts(tmp_path):
    loaded = config.load(str(tmp_path), env={"IAM_ENV": "development", "IAM_DB_LOCK_TIMEOUT": "3"})
    assert (loaded["IAM_DB_STATEMENT_TIMEOUT"], loaded["IAM_DB_LOCK_TIMEOUT"]) == (10.0, 3.0)
