"""The SQLAlchemy bridge's single flight (``ormcache.sqlalchemy._bridge.Flights``) under a hostile
key (issue #20): its own file, in the SQLAlchemy area, so that every environment that runs it has
SQLAlchemy (tests/ormcache/test_flight_hostile.py, which AddressSanitizer also runs, needs none)."""
import asyncio

from ormcache.sqlalchemy._bridge import Flights
from support.flights import WAIT, colliding_keys


def test_a_flight_whose_removal_fails_still_wakes_its_waiters():
    """The bridge's table (``sqlalchemy._bridge.Flights``): a flight whose removal fails still
    wakes its waiters, and the next ``start`` of its key leads a new one."""
    a, b, arm = colliding_keys()

    async def main():
        flights = Flights()
        first, leads_a = flights.start(a)
        flight, leads_b = flights.start(b)
        joined, leads = flights.start(b)
        assert leads_a and leads_b and joined is flight and not leads
        waiter = asyncio.ensure_future(joined.wait())
        await asyncio.sleep(0)
        arm()
        flight.done()  # its removal compares b with a: raises there, the waiter is still woken
        await asyncio.wait_for(waiter, WAIT)
        again, leads = flights.start(b)
        assert leads and again is not flight
        again.done()
        first.done()
        assert flights._running == {}

    asyncio.run(main())
