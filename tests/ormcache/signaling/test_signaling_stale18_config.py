"""Issue 18, item 6, for the signaling constructors: a configuration that cannot work raises at
construction with a clear message (no password in it), instead of failing at every call or
meaning something else than it says. Before the fix each of these was accepted."""
from __future__ import annotations

import pytest

from ormcache.signaling import PostgresSignaling, RedisSignaling

DSN = "host=127.0.0.1 port=1 dbname=nowhere user=u password=s3cret-pw"  # never connected to


@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_record_in_transaction_is_a_bool(value):
    with pytest.raises(TypeError, match="record_in_transaction must be True or False") as info:
        PostgresSignaling(DSN, record_in_transaction=value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("value,error", [(0, ValueError), (-5, ValueError), ("64", TypeError), (2.5, TypeError),
                                         (True, TypeError)])
def test_prune_every_is_a_positive_int(value, error):
    with pytest.raises(error, match="prune_every") as info:
        PostgresSignaling(DSN, prune_every=value)
    assert "s3cret" not in str(info.value)


def test_good_postgres_settings_are_kept():
    backend = PostgresSignaling(DSN, record_in_transaction=False, prune_every=1)
    assert (backend.record_in_transaction, backend.prune_every) == (False, 1)


@pytest.mark.parametrize("prefix,error", [("x:{other}:", ValueError), ("x:{0}:", ValueError),
                                          ("x:{db_name", ValueError), (b"x:", TypeError)])
def test_a_redis_key_prefix_formats_with_db_name_only(prefix, error):
    with pytest.raises(error, match="key_prefix"):
        RedisSignaling("redis://:s3cret-pw@127.0.0.1:1/0", key_prefix=prefix)


def test_good_redis_prefixes_are_kept():
    for prefix in ("ormcache:{db_name}:", "plain:", "literal {{braces}}:{db_name}:"):
        backend = RedisSignaling("redis://127.0.0.1:1/0", key_prefix=prefix)
        assert backend.key_prefix == prefix
        backend.close()

