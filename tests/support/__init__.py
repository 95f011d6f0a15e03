"""Helpers shared by the test modules (a test module imports from here and from conftest
fixtures, never from another test module): ``servers`` (private PostgreSQL/Redis, a pytest
plugin), ``models`` (the one ormcache model factory), ``lru`` (subprocess isolation, unraisable
capture), ``freethreaded``, ``signaling_workers``/``signaling`` (signaling processes, password
servers, the heartbeat), ``sqla*`` and ``capture`` (SQLAlchemy schemas, apps and workers)."""
