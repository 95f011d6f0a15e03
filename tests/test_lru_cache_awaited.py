"""A coroutine function's cached hit behaves as a finished coroutine (issue #20): the compiled
``AwaitedValue`` as the twin's real coroutine. ``throw()`` once done raises ``RuntimeError`` (as
README promises), ``throw(StopIteration)`` comes out as ``RuntimeError`` (never a raw
``StopIteration``), and ``yield from`` of it works in a ``@types.coroutine`` generator."""
import asyncio
import importlib
import types

import pytest

WRAPPERS = [
    pytest.param("fastlru._functools_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="pure-python"),
]


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


@pytest.mark.parametrize("thrown", [StopIteration, StopIteration("value")])
def test_throw_stop_iteration_is_a_runtime_error(hit, thrown):
    awaited = hit()
    with pytest.raises(RuntimeError, match="coroutine raised StopIteration") as error:
        awaited.throw(thrown)
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
