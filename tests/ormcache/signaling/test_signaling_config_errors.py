"""Configuration errors of the signaling backends (issue #9, the parts that live in the
backends): a wrong password is a configuration error (``SignalingConfigurationError``, never an
outage), a Redis that may evict keys (``allkeys-*``) is refused, and no password is ever printed.
Real servers (tests/support/servers.py); a Redis and a PostgreSQL role with passwords of their own."""
import logging
import uuid

import psycopg
import pytest
import redis

from ormcache.registry import Registry
from ormcache.signaling import (
    PostgresSignaling,
    ReadOnlyBackendError,
    RedisSignaling,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
)
from support.signaling import PASSWORD, assert_no_password, pg_password_dsn, redis_with_password  # noqa: F401 - fixtures

def test_the_configuration_error_is_a_signaling_error_but_not_an_outage():
    assert issubclass(SignalingConfigurationError, SignalingError)
    assert not issubclass(SignalingConfigurationError, SignalingUnavailable)
    assert issubclass(ReadOnlyBackendError, SignalingConfigurationError)


def test_redis_wrong_password_is_a_configuration_error(redis_with_password, caplog):
    url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{redis_with_password.port}/0"
    backend = RedisSignaling(url)
    registry = Registry(f"auth-{uuid.uuid4().hex[:8]}")
    registry.signaling = backend
    try:
        with pytest.raises(SignalingConfigurationError, match="authentication") as info:
            backend.read("db", ["default"])
        assert not isinstance(info.value, SignalingUnavailable)
        with pytest.raises(SignalingConfigurationError, match="authentication"):
            registry.check_signaling()  # raised, not handled as an outage
        assert_no_password(str(info.value), repr(info.value), repr(backend), str(backend), caplog.text)
    finally:
        backend.close()
        Registry.delete(registry.db_name)


def test_redis_missing_password_is_a_configuration_error(redis_with_password):
    backend = RedisSignaling(redis_with_password.url)
    try:
        with pytest.raises(SignalingConfigurationError, match="authentication"):
            backend.read("db", ["default"])
    finally:
        backend.close()


def test_redis_right_password_works_and_is_never_shown(redis_with_password, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_with_password.port}/0"
    backend = RedisSignaling(url, key_prefix=f"t:{uuid.uuid4().hex[:8]}:")
    try:
        backend.bump("db", ["default"])
        assert backend.read("db", ["default"])[1] == {"default": 1}
        redis_with_password.stop()
        try:
            with pytest.raises(SignalingUnavailable) as info:
                backend.read("db", ["default"])
        finally:
            redis_with_password.start()
        assert_no_password(repr(backend), str(backend), str(info.value), caplog.text)
    finally:
        backend.close()


def test_postgres_wrong_password_is_a_configuration_error(pg_password_dsn, caplog):
    dsn, role = pg_password_dsn
    backend = PostgresSignaling(dsn + f" password=wrong-{PASSWORD}")
    try:
        with pytest.raises(SignalingConfigurationError, match="authentication") as info:
            backend.read("db", ["default"])
        assert not isinstance(info.value, SignalingUnavailable)
        assert_no_password(str(info.value), repr(backend), str(backend), caplog.text)
    finally:
        backend.close()


def test_postgres_password_never_shown(pg_password_dsn, postgres_server, caplog):
    caplog.set_level(logging.DEBUG)
    dsn, role = pg_password_dsn
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"GRANT ALL ON DATABASE {psycopg.conninfo.conninfo_to_dict(dsn)['dbname']} TO {role}")
    backend = PostgresSignaling(dsn + f" password={PASSWORD}")
    try:
        texts = [repr(backend), str(backend)]
        try:
            backend.read("db", ["default"])
        except SignalingError as exc:  # the role may lack CREATE on the schema: any error will do
            texts += [str(exc), repr(exc)]
        assert_no_password(*texts, caplog.text)
    finally:
        backend.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_redis_that_may_evict_any_key_is_refused(redis_server, redis_prefix, policy):
    """Issue #9: with allkeys-* a counter can be evicted while its epoch survives, and come back
    at an old value: refused at first use (and after each reconnect), naming the setting."""
    client = redis.Redis.from_url(redis_server.url)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", policy)
    backend = RedisSignaling(redis_server.url, key_prefix=redis_prefix)
    try:
        with pytest.raises(SignalingConfigurationError, match=f"maxmemory-policy.*{policy}"):
            backend.read("db", ["default"])
        with pytest.raises(SignalingConfigurationError, match="maxmemory-policy"):
            backend.bump("db", ["default"])
        client.config_set("maxmemory-policy", "noeviction")
        assert backend.read("db", ["default"])[1] == {"default": 0}
    finally:
        client.config_set("maxmemory-policy", before)
        client.close()
        backend.close()


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-ttl"])
def test_redis_policies_that_keep_keys_without_ttl_are_accepted(redis_server, redis_prefix, policy):
    client = redis.Redis.from_url(redis_server.url)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", policy)
    backend = RedisSignaling(redis_server.url, key_prefix=redis_prefix)
    try:
        backend.bump("db", ["default"])
        assert backend.read("db", ["default"])[1] == {"default": 1}
    finally:
        client.config_set("maxmemory-policy", before)
        client.close()
        backend.close()
