"""The SQLAlchemy bridge's single flight (``ormcache.sqlalchemy._bridge.Flights``) under a hostile
key (issue #20): its own file, in the SQLAlchemy area, so that every environment that runs it has
SQLAlchemy (tests/ormcache/test_flight_hostile.py, which AddressSanitizer also runs, needs none)."""
import asyncio

from ormcache.sqlalchemy._bridge import Flights

WAIT = 10  # seconds: only reached when something is broken


def test_a_flight_whose_removal_fails_still_wakes_its_waiters():
    """The bridge's table (``sqlalchemy._bridge.Flights``): a flight whose removal fails still
    wakes its waiters, and the next ``start`` of its key leads a new one."""
    armed = [False]

    class Key:
        def __hash__(self):
            return 42

        def __eq__(self, other):
            if self is other:
                return True
            if armed[0]:
                armed[0] = False
                raise ValueError("hostile __eq__")
            return False

    a, b = Key(), Key()

    async def main():
        flights = Flights()
        first, leads_a = flights.start(a)
        flight, leads_b = flights.start(b)
        joined, leads = flights.start(b)
        assert leads_a and leads_b and joined is flight and not leads
        waiter = asyncio.ensure_future(joined.wait())
        await asyncio.sleep(0)
        armed[0] = True
        flight.done()  # its removal compares b with a: raises there, the waiter is still woken
        await asyncio.wait_for(waiter, WAIT)
        again, leads = flights.start(b)
        assert leads and again is not flight
        again.done()
        first.done()
        assert flights._running == {}

    asyncio.run(main())
