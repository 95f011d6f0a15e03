"""Issue 18, item 4 with an AsyncSession: a bulk or ``text()`` write as the first statement of
the transaction keeps its invalidation (the session autobegins inside the greenlet bridge).
Before the fix: read inside, then rolled back, the never-committed value was served afterwards
(every kind); after: never."""
from __future__ import annotations

import pytest
from sqlalchemy import text, update

from support.sqla_async import Customer, Shop, add_customers, adb, aregistry, async_pg, make_cache, run  # noqa: F401

KINDS = {
    "update": lambda: update(Customer).where(Customer.id == 1).values(name="never"),
    "text": lambda: text("UPDATE customers SET name = 'never' WHERE id = 1"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_first_statement_write_read_then_rolled_back(adb, aregistry, kind):
    async def body(engine):
        cache, maker = make_cache(aregistry, engine)
        await add_customers(maker, 2)
        served = []
        for _ in range(5):
            async with maker() as session:
                committed = await Shop(cache, session).customer_names
                await session.commit()
            async with maker() as session:
                await session.execute(KINDS[kind]())
                assert Shop.customer_names.key in cache.pending(session.sync_session).keys
                inside = await Shop(cache, session).customer_names
                await session.rollback()
            async with maker() as session:
                after = await Shop(cache, session).customer_names
            served.append((committed, inside, after))
        cache.close()
        return served

    for committed, inside, after in run(adb, body):
        assert inside[0] == "never" and after == committed == ("customer1", "customer2")


def test_the_shared_tier_alone_never_blocks_the_loop_when_add_begins(adb, aregistry, redis_server, redis_prefix):
    """The tier's own version is read when a transaction begins; ``AsyncSession.add()`` begins
    one outside the greenlet bridge: the read waits for the first step inside it, where it is
    awaited (before: a blocking Redis call on the event loop's thread, even with
    ``check_signaling=False``)."""
    from sqlalchemy.util.concurrency import in_greenlet

    async def body(engine):
        cache, maker = make_cache(aregistry, engine, redis_url=redis_server.url, secret=b"test secret",
                                  redis_prefix=f"{redis_prefix}{{db_name}}:", check_signaling=False)
        reads = []
        signals = cache.shared.signals

        def traced():
            reads.append(in_greenlet())
            return signals()

        cache.shared.signals = traced
        try:
            async with maker() as session:
                session.add(Customer(id=1, name="first"))  # autobegins outside the bridge
                await session.commit()
            async with maker() as session:
                names = await Shop(cache, session).customer_names
        finally:
            await cache.aclose()
        return reads, names

    reads, names = run(adb, body)
    assert names == ("first",)
    assert reads and all(reads), reads  # every read of the tier's version was awaited
