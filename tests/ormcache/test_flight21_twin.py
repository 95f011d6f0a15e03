"""Single flight for threads has one home, ``fastlru._flight``, and ``ormcache._cache_c.Flight`` is
its declared compiled twin: every rule of the module runs here on flights of both kinds (made by
each module's ``new_flight``), as ``lru_impl`` runs the engine's tests on both engines."""
import importlib
import sys
import threading

import pytest

from support.flights import WAIT, colliding_keys, until

from fastlru import _flight


FLIGHTS = [
    pytest.param("ormcache._cache_c", id="c-flight", marks=pytest.mark.c_extension),
    pytest.param("fastlru._flight", id="py-flight"),
]


@pytest.fixture(params=FLIGHTS)
def new_flight(request):
    """``new_flight`` of one implementation (a compiled one that did not build fails, never skips)."""
    return importlib.import_module(request.param).new_flight


def in_thread(target):
    """``target()`` in a daemon thread, started; -> (thread, its result list)."""
    out = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def test_both_kinds_have_the_same_fields(new_flight):
    me = threading.get_ident()
    flight = new_flight(me)
    assert (flight.thread, flight.lock, flight.value, flight.stored, flight.landed) == (me, None, None, False, False)
    assert type(flight).__name__ == "Flight"


def test_the_first_claim_leads_the_next_join_and_a_landed_one_is_replaced(new_flight):
    flights, me = {}, threading.get_ident()
    first = new_flight(me)
    assert _flight.claim(flights, "k", first) is first
    assert _flight.claim(flights, "k", new_flight(me)) is first
    _flight.land(first)  # landed but left in the table (its removal failed)
    second = new_flight(me)
    assert _flight.claim(flights, "k", second) is second and flights == {"k": second}
    _flight.drop(flights, "k", second)
    assert flights == {} and second.landed


def test_a_waiter_takes_the_published_value(new_flight):
    flights = {}
    flight = new_flight(threading.get_ident())
    _flight.claim(flights, "k", flight)
    thread, out = in_thread(lambda: _flight.join(flight, threading.get_ident()))
    assert until(lambda: thread.ident in _flight.waiting)
    assert flight.lock is not None and flight.lock.locked()
    _flight.publish(flight, "value")
    _flight.drop(flights, "k", flight)
    thread.join(WAIT)
    assert out == ["value"] and _flight.waiting == {} and flights == {}


def test_a_flight_without_a_value_says_again_and_a_late_waiter_does_not_wait(new_flight):
    flight = new_flight(threading.get_ident())
    _flight.land(flight)
    thread, out = in_thread(lambda: _flight.join(flight, threading.get_ident()))
    thread.join(WAIT)
    assert out == [_flight.AGAIN] and flight.lock is None  # no lock made for a landed flight


def test_joining_ones_own_flight_is_a_cycle(new_flight):
    me = threading.get_ident()
    assert _flight.join(new_flight(me), me) is _flight.CYCLE


def test_a_cycle_through_another_thread_is_seen(new_flight):
    """Thread T waits on my flight; joining T's flight would close the cycle: CYCLE, not a wait."""
    me = threading.get_ident()
    mine = new_flight(me)
    thread, out = in_thread(lambda: _flight.join(mine, threading.get_ident()))
    assert until(lambda: thread.ident in _flight.waiting)
    theirs = new_flight(thread.ident)
    assert _flight.join(theirs, me) is _flight.CYCLE
    _flight.land(mine)
    thread.join(WAIT)
    assert out == [_flight.AGAIN] and _flight.waiting == {}


def test_a_failed_removal_still_wakes_the_waiters(new_flight):
    """issue #20: the finished flight's removal compares keys (a hostile ``__eq__`` raises); its
    waiters are woken anyway and the flight stays, landed, for the next claim to replace."""
    a, b, arm = colliding_keys()
    flights, me = {}, threading.get_ident()
    first, flight = new_flight(me), new_flight(me)
    _flight.claim(flights, a, first)
    _flight.claim(flights, b, flight)
    thread, out = in_thread(lambda: _flight.join(flight, threading.get_ident()))
    assert until(lambda: thread.ident in _flight.waiting)
    _flight.publish(flight, "b")
    arm()
    _flight.drop(flights, b, flight)  # raises inside, swallowed: the value is the caller's
    thread.join(WAIT)
    assert out == ["b"] and flight.landed and flights[b] is flight
    again = new_flight(me)
    assert _flight.claim(flights, b, again) is again
    _flight.drop(flights, b, again)
    _flight.drop(flights, a, first)
    assert flights == {}


def test_ormcache_uses_the_one_module():
    """The names the hit paths and the tests reach through ``_cold`` are ``fastlru._flight``'s."""
    from ormcache import _cold

    assert _cold._waiting is _flight.waiting and _cold.AGAIN is _flight.AGAIN
    assert _cold.claim is _flight.claim and _cold.drop is _flight.drop and _cold._land is _flight.land
    assert "fastlru._flight" in sys.modules
