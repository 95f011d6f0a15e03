"""An AsyncSession's unit of work never blocks the event loop on signaling (issue #13, item 3):
the session events run inside SQLAlchemy's greenlet bridge, where the check at the start of a
transaction and the publish after its commit await ``acheck_signaling()`` / ``asignal_changes()``.

With the signaling server hung (a black hole: it accepts and never answers) each costs one
deadline, during which a heartbeat task ticking every 1 ms keeps ticking (no gap of half a
deadline). The blocking calls would stall it for the whole deadline (the baseline of
test_signaling_async).
"""
import asyncio

import pytest
from sqlalchemy import event, select

from ormcache.signaling import SignalingUnavailable
from support.servers import BlackHole
from support.signaling import HANG, MAX_GAP, backend_on, with_heartbeat
from support.sqla_async import (  # noqa: F401 - fixtures
    Currency,
    Customer,
    Shop,
    add_customers,
    adb,
    aregistry,
    async_pg,
    make_cache,
    run,
)


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_unit_of_work_keeps_the_loop_serving_while_signaling_hangs(adb, aregistry, kind, caplog):
    with BlackHole() as hole:
        aregistry.signaling = backend_on(kind, hole.port, timeout=HANG)
        aregistry.signaling_retry_interval = 0.0  # the commit's publish tries (and waits) too
        aregistry.signaling_background_retry = False
        checks = []
        check = aregistry.acheck_signaling

        async def counted_check():
            checks.append(True)
            return await check()

        aregistry.acheck_signaling = counted_check

        async def body(engine):
            cache, maker = make_cache(aregistry, engine)

            async def unit():
                async with maker() as session:
                    async with session.begin():  # the check: one deadline
                        await session.execute(select(Customer.id))
                        session.add(Customer(id=1000, name="new"))
                    # committed; the publish: one more deadline
                async with maker() as session:
                    return await Shop(cache, session).customer_names

            try:
                return await with_heartbeat(unit)
            finally:
                await aregistry.signaling.aclose()

        names, took, gap = run(adb, body)
        aregistry._signaling_pending.clear()  # not retried at exit
    assert names == ("new",)  # the unit of work went through, and its commit was served fresh
    assert len(checks) == 2  # each transaction's check was awaited, not called blocking
    assert 2 * HANG * 0.8 <= took, took  # the check and the publish each waited a deadline...
    assert gap < MAX_GAP, gap  # ...while the loop kept serving the heartbeat
    assert any("kept" in record.getMessage() for record in caplog.records)  # the publish failed


@pytest.mark.parametrize("start", ["add", "add_all"])
@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_unit_of_work_starting_with_add_keeps_the_loop_serving(adb, aregistry, kind, start):
    """``AsyncSession.add()`` / ``add_all()`` autobegin outside the greenlet bridge: the check of
    that transaction waits for its first step inside the bridge (here the commit's flush), where
    it is awaited."""
    with BlackHole() as hole:
        aregistry.signaling = backend_on(kind, hole.port, timeout=HANG)
        aregistry.signaling_retry_interval = 0.0
        aregistry.signaling_background_retry = False
        checks, blocking = [], []
        check, blocking_check = aregistry.acheck_signaling, aregistry.check_signaling

        async def counted_check():
            checks.append(True)
            return await check()

        def counted_blocking_check():
            blocking.append(True)
            return blocking_check()

        aregistry.acheck_signaling = counted_check
        aregistry.check_signaling = counted_blocking_check

        async def body(engine):
            cache, maker = make_cache(aregistry, engine)

            async def unit(id_=1000):
                async with maker() as session:
                    if start == "add":
                        session.add(Customer(id=id_, name="new"))
                    else:
                        session.add_all([Customer(id=id_, name="new")])
                    assert session.in_transaction()  # autobegun, its check not run yet
                    await session.commit()  # the flush: the check; then the publish
                return True

            try:
                # once unmeasured: the heartbeat measures the waits, not SQLAlchemy compiling
                # its first INSERT on a loaded machine
                await unit(999)
                del checks[:], blocking[:]
                return await with_heartbeat(unit)
            finally:
                await aregistry.signaling.aclose()

        done, took, gap = run(adb, body)
        aregistry._signaling_pending.clear()
    assert done is True
    assert HANG * 0.8 <= took, took  # the check waited a deadline...
    assert gap < MAX_GAP, gap  # ...while the loop kept serving the heartbeat
    assert blocking == []  # no check called blocking in the event loop
    assert checks, checks  # the check of the add()'s transaction was awaited


@pytest.mark.parametrize("step", ["execute", "commit", "savepoint", "cached read", "rollback"])
def test_the_deferred_check_runs_before_the_first_sql(adb, aregistry, step):
    """The check of a transaction ``add()`` began runs, awaited, at its first step inside the
    bridge and before that step's first SQL (the transaction's snapshot comes after the check,
    as when a query begins it); a transaction that ends with no such step skips it."""
    trace = []
    check = aregistry.acheck_signaling

    async def traced_check():
        trace.append("check")
        return await check()

    def blocking_check():
        trace.append("blocking check")

    aregistry.acheck_signaling = traced_check
    aregistry.check_signaling = blocking_check

    async def body(engine):
        cache, maker = make_cache(aregistry, engine)
        await add_customers(maker, 3)
        names = ("customer1", "customer2", "customer3")
        async with maker() as session:
            assert await Shop(cache, session).customer_names == names  # cached
        listener = lambda *args: trace.append("sql")  # noqa: E731
        event.listen(engine.sync_engine, "before_cursor_execute", listener)
        del trace[:]
        async with maker() as session:
            added = Currency(code="USD", name="US dollar")
            session.add(added)
            assert trace == []  # deferred
            if step == "execute":
                assert len((await session.scalars(select(Customer.id))).all()) == 3
            elif step == "commit":
                await session.commit()
            elif step == "savepoint":
                async with session.begin_nested():
                    assert await Shop(cache, session).customer_names == names
            elif step == "cached read":
                session.expunge(added)  # nothing to flush: still not a hit without the check
                assert await Shop(cache, session).customer_names == names
            else:
                await session.rollback()
        async with maker() as session:  # the next transaction: checked as usual
            await session.scalars(select(Customer.id))
        event.remove(engine.sync_engine, "before_cursor_execute", listener)

    run(adb, body)
    assert "blocking check" not in trace
    if step == "rollback":
        assert trace[0] == "check" and trace.count("check") == 1, trace  # only the next one's
    elif step == "cached read":
        assert trace[:2] == ["check", "check"], trace  # a hit: no SQL; then the next transaction
    else:
        assert trace[0] == "check" and "sql" in trace, trace  # before any SQL
        assert trace.count("check") == 2, trace
