"""A coroutine function's cached hit behaves as a finished coroutine (issue #20): the compiled
``AwaitedValue`` as the twin's real coroutine. ``throw()`` once done raises ``RuntimeError`` (as
README promises), ``throw(StopIteration)`` comes out as a plain coroutine's does on this
interpreter (``RuntimeError`` up to 3.11, the ``StopIteration`` itself from 3.12 on), and
``yield from`` of it works in a ``@types.coroutine`` generator."""
import asyncio
import importlib
import types

import pytest
from support.lru import WRAPPERS


@pytest.fixture(params=WRAPPERS)
def hit(request):
    """A function making a hit's coroutine (the value 42 is cached)."""

    @importlib.import_module(request.param).lru_cache
    async def answer():
        return 42

    assert asyncio.run(answer()) == 42  # cached now: each call is a hit
    return answer


def test_throw_once_done_raises_runtime_error(hit):
    done = hit()
    with pytest.raises(StopIteration) as stop:
        done.send(None)
    assert stop.value.value == 42
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        done.throw(ValueError)
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        done.throw(ValueError("again"))


def test_throw_once_thrown_or_closed_raises_runtime_error(hit):
    thrown = hit()
    with pytest.raises(ValueError):
        thrown.throw(ValueError)
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        thrown.throw(ValueError)
    closed = hit()
    closed.close()
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        closed.throw(KeyError)
    closed.close()  # closing again is fine, as for a coroutine


def _plain_throw(thrown):
    """What ``throw(thrown)`` into a plain coroutine that has not started raises on this
    interpreter: ``RuntimeError`` from the ``StopIteration`` up to 3.11 (its frame runs), the
    ``StopIteration`` itself from 3.12 on."""

    async def plain():
        return 42

    coroutine = plain()
    try:
        coroutine.throw(thrown)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the hit must match it
        return type(exc)
    finally:
        coroutine.close()
    raise AssertionError("throw() returned")


@pytest.mark.parametrize("thrown", [StopIteration, StopIteration("value")])
def test_throw_stop_iteration_as_a_coroutine_of_this_interpreter(hit, thrown):
    expected = _plain_throw(thrown)
    assert expected in (RuntimeError, StopIteration)
    awaited = hit()
    with pytest.raises(expected) as error:
        awaited.throw(thrown)
    if expected is RuntimeError:
        assert str(error.value) == "coroutine raised StopIteration"
        assert isinstance(error.value.__cause__, StopIteration)
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        awaited.send(None)


def test_yield_from_in_a_generator_based_coroutine(hit):
    @types.coroutine
    def legacy():
        value = yield from hit()
        return value + 1

    async def main():
        return await legacy()

    assert asyncio.run(main()) == 43
