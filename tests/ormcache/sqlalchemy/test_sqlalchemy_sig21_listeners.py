"""One listener-install helper (issue #21 item 1): ``listen_once`` installs the class-level
listeners of the binding (Engine), the cached members and the record caches (Session), each
set once per process, whoever asks first and however many threads ask at once."""
import ast
import threading
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

import ormcache.sqlalchemy
from ormcache.sqlalchemy._session import listen_once

SRC = Path(ormcache.sqlalchemy.__file__).resolve().parent


def _fresh_session_class():
    return type("Sig21Session", (Session,), {})


def test_listen_once_installs_a_set_once():
    cls = _fresh_session_class()
    calls = []

    def created(session, transaction):
        calls.append("created")

    def ended(session, transaction):
        calls.append("ended")

    listeners = (("after_transaction_create", created), ("after_transaction_end", ended))
    for _ in range(3):
        listen_once(cls, listeners)
    assert event.contains(cls, "after_transaction_create", created)
    engine = create_engine("sqlite://")
    try:
        with cls(engine) as session:
            session.connection()
            session.rollback()
    finally:
        engine.dispose()
    assert calls == ["created", "ended"]


def test_listen_once_from_many_threads_at_once():
    cls = _fresh_session_class()
    calls = []

    def created(session, transaction):
        calls.append(1)

    listeners = (("after_transaction_create", created),)
    barrier = threading.Barrier(8)

    def install():
        barrier.wait()
        listen_once(cls, listeners)

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine = create_engine("sqlite://")
    try:
        with cls(engine) as session:
            session.connection()
    finally:
        engine.dispose()
    assert calls == [1]


def test_every_class_level_listener_goes_through_listen_once():
    """No module of ``ormcache.sqlalchemy`` but ``_session`` calls ``event.listen(Session, ...)``
    or ``event.listen(Engine, ...)`` itself (it was written three times, each with its flag)."""
    offenders = []
    for path in sorted(SRC.glob("*.py")):
        if path.name == "_session.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "listen" and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id in ("Session", "Engine")):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
