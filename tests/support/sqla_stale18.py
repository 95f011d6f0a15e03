"""Writes, readers and a process answering commands for the issue-18 stale tests (no tests here).

The cached value is ``Stale18App.users``: every (id, name) of the users table, so that an update,
a delete and an insert each change it. The truth is read by a plain connection, no cache.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from sqlalchemy import delete, insert, select, text, update

from ormcache.sqlalchemy import orm_cached
from support.sqla_stale import close_caches, open_caches
from support.sqla import User, Worker, serve


class Stale18App:
    computed = 0  # how many times this process computed ``users``

    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def users(self):
        Stale18App.computed += 1
        return tuple(tuple(row) for row in self.session.execute(select(User.id, User.name).order_by(User.id)))


def open18(opts: Dict[str, Any]):
    engine, factory, cache = open_caches(opts)
    cache.register(Stale18App)
    return engine, factory, cache


def cached_users(factory, cache):
    """One unit of work reading the cached value."""
    with factory() as session:
        value = Stale18App(cache, session).users
        session.commit()
    return value


def true_users(engine):
    """The table as committed (no cache, no session)."""
    with engine.connect() as connection:
        return tuple(tuple(row) for row in connection.execute(select(User.id, User.name).order_by(User.id)))


def _upsert(session, i: int) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    statement = pg_insert(User).values(id=1, name=str(i))
    session.execute(statement.on_conflict_do_update(index_elements=[User.id], set_={"name": str(i)}))


#: kind -> the first statement of a transaction, writing round ``i`` (``i`` >= 1)
FIRST_WRITES: Dict[str, Callable[[Any, int], None]] = {
    "update": lambda s, i: s.execute(update(User).where(User.id == 1).values(name=str(i))),
    "delete": lambda s, i: s.execute(delete(User).where(User.id == 1000 + i - 1)),
    "insert": lambda s, i: s.execute(insert(User).values(id=1000 + i, name=str(i))),
    "upsert": _upsert,
    "text": lambda s, i: s.execute(text("UPDATE users SET name = :n WHERE id = 1"), {"n": str(i)}),
}


def first_write(factory, kind: str, i: int) -> None:
    """``kind``'s write as the first statement of a session transaction, committed. For a
    delete, the row it deletes is inserted (and committed) by the round before."""
    with factory() as session:
        FIRST_WRITES[kind](session, i)
        session.commit()
    if kind == "delete":  # the row the next round deletes
        with factory() as session:
            session.execute(insert(User).values(id=1000 + i, name=str(i)))
            session.commit()


def worker18(conn, opts) -> None:
    engine, factory, cache = open18(opts)
    held = []  # a session whose transaction "begin" opened

    def answer(command):
        name, *args = command
        if name == "begin":  # a transaction that takes its snapshot now (uncached SELECT)
            session = factory()
            session.execute(select(User.id)).all()
            held.append(session)
            return None
        if name == "read_held":  # the cached value in that transaction, then commit
            session = held.pop()
            try:
                value = Stale18App(cache, session).users
                session.commit()
            finally:
                session.close()
            return value
        if name == "read":
            return cached_users(factory, cache)
        if name == "computed":
            return Stale18App.computed
        raise ValueError(name)

    serve(conn, answer, lambda: close_caches(engine, cache))


class Process18(Worker):
    """A process reading ``Stale18App.users`` on command; every wait is bounded."""

    def __init__(self, opts) -> None:
        super().__init__(opts, target=worker18)


# -- a COMMIT whose answer is lost ---------------------------------------------------------------

def commit_cutter(target_port: int):
    """A ``TcpProxy`` that, once ``armed``, forwards the next ``COMMIT`` to the server, drops its
    answer and cuts every connection 0.3 s later: the server committed, the client never knows.
    ``cut`` (a threading.Event) is set once the path is cut; ``start()`` listens again."""
    import threading

    from support.servers import TcpProxy

    class CommitCutter(TcpProxy):
        armed = False

        def __init__(self, port):
            super().__init__(port)
            self.cut = threading.Event()

        def _forward(self, data, dst):
            if self.armed and b"COMMIT\x00" in data:
                self.armed = False
                self.silent = True  # from now on, every answer is lost
                dst.sendall(data)
                threading.Timer(0.3, self._cut).start()
            else:
                super()._forward(data, dst)

        def _cut(self):
            self.stop()
            self.silent = False
            self.cut.set()

    return CommitCutter(target_port)
