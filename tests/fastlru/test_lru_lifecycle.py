"""Object lifecycle: __init__ runs once, the class can be subclassed, and the chooser picks an
engine."""
import os
import subprocess
import sys

import pytest


def test_init_twice_is_refused_and_changes_nothing(LRU):
    lru = LRU(3, [("a", 1)])
    with pytest.raises(RuntimeError, match="called twice"):
        lru.__init__(5, maxweight=3)
    assert lru.count == 3
    assert lru.maxweight is None
    lru["b"] = 2
    assert lru.items() == [("b", 2), ("a", 1)]
    lru._check()


def test_init_twice_on_an_empty_cache_is_refused_too(LRU):
    lru = LRU(3)
    with pytest.raises(RuntimeError, match="called twice"):
        lru.__init__(5, maxweight=3)
    for i in range(10):
        lru[i] = i  # without a weight array: a re-init must not have half-enabled weights
    assert lru.keys() == [9, 8, 7]
    lru._check()


def test_class_can_be_subclassed(LRU):
    # Issue #10 turned "the class is final" around: subclasses are supported
    # (tests/fastlru/test_lru_subclass.py has the details).
    Sub = type("Sub", (LRU,), {})
    s = Sub(2, [(1, 1), (2, 2), (3, 3)])
    assert type(s) is Sub and s.items() == [(3, 3), (2, 2)]


@pytest.mark.parametrize("env, expected", [({}, "c"), ({"FASTLRU_NO_EXTENSIONS": "1"}, "python")])
def test_chooser(env, expected):
    code = "import fastlru; print(fastlru.IMPLEMENTATION, fastlru.LRU.__module__)"
    base = {k: v for k, v in os.environ.items() if k != "FASTLRU_NO_EXTENSIONS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env},
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert out == [expected, {"c": "fastlru._lru_c", "python": "fastlru._lru_py"}[expected]]
