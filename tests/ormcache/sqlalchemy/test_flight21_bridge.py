"""The SQLAlchemy bridge's single flight is ``fastlru._aio``'s, the one asyncio single flight
(issue #21): its table is an ``AsyncFlights``, its flights ``_aio.Flight``s, and its waiters are
recorded where every asyncio cache looks for cycles."""
import asyncio

from fastlru import _aio
from ormcache.sqlalchemy._bridge import Flight, Flights

from support.flights import WAIT


def test_the_bridge_table_is_an_async_flights():
    assert issubclass(Flights, _aio.AsyncFlights) and Flight is _aio.Flight


def test_a_bridge_waiter_is_seen_by_the_cycle_rule_and_takes_the_retry():
    async def main():
        flights = Flights()
        leader = asyncio.current_task()
        flight, leads = flights.start("k")
        assert leads and flight.task is leader and flights.table == {(asyncio.get_running_loop(), "k"): flight}

        async def waiter():
            joined, leads = flights.start("k")
            assert joined is flight and not leads
            return await joined.wait()

        task = asyncio.ensure_future(waiter())
        while task not in _aio._waiting:
            await asyncio.sleep(0)
        # the leader asking for a key its waiter computes would close a cycle: seen
        assert _aio._reaches(_aio.Flight(asyncio.get_running_loop(), task, flights, "other"), leader)
        flight.done()
        assert await asyncio.wait_for(task, WAIT) is _aio.RETRY  # nothing shared: look again
        assert flights.table == {} and _aio._waiting == {}

    asyncio.run(main())
