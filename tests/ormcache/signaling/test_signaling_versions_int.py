"""A name's version is an ``int`` whatever the backend (issue #21, small things): PostgreSQL's
``sum(weight)`` is ``numeric``, which psycopg returns as ``Decimal``; the local and Redis
backends' versions were ints already."""
import uuid

import pytest

import ormcache
from ormcache.signaling import PostgresSignaling, RedisSignaling
from ormcache.signaling.base import LocalSignaling


@pytest.fixture(params=["postgres", "redis", "local"])
def backend(request):
    if request.param == "postgres":
        made = PostgresSignaling(request.getfixturevalue("pg_dsn"), timeout=5)
    elif request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        made = RedisSignaling(request.getfixturevalue("redis_server").url, key_prefix=prefix, timeout=5)
    else:
        made = LocalSignaling()
    yield made
    made.close()


def test_versions_are_ints(backend):
    db = f"versions-{uuid.uuid4().hex[:8]}"
    backend.bump(db, ["a"])
    backend.bump(db, ["a", "b"])
    epoch, versions = backend.read_versions(db, ["a", "b", "c"])
    assert [type(v) for v in versions] == [int, int, int], versions
    assert versions[0] > versions[1] > versions[2], versions


def test_ormcache_has_the_distribution_version():
    from importlib.metadata import version

    assert ormcache.__version__ == version("fastlru") and "__version__" in ormcache.__all__
