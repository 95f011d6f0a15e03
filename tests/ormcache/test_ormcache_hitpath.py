"""The ormcache hit paths against hostile keys (issue #10, findings 6, 7 and 10, CPython 3.14).

Every test runs on both fastlru engines and both hit paths (``registry`` fixture); the cases that
could crash the interpreter run in a subprocess with a timeout.
"""
import logging

import pytest

from ormcache import Registry, ormcache as cached
from support.models import counter_of, run_isolated, value_model


class Colliding:
    """Every instance hashes alike, so a lookup compares keys with ``__eq__``; ``error`` is what
    hashing (``on="hash"``) or comparing (``on="eq"``) this instance raises."""

    def __init__(self, name, error=None, on="eq"):
        self.name, self.error, self.on = name, error, on

    def __hash__(self):
        if self.error is not None and self.on == "hash":
            raise self.error
        return 1

    def __eq__(self, other):
        for side in (self, other):
            if isinstance(side, Colliding) and side.error is not None and side.on == "eq":
                raise side.error
        return isinstance(other, Colliding) and other.name == self.name

    def __repr__(self):
        return f"Colliding({self.name!r})"


# -- finding 6: only a genuine miss is a miss ------------------------------------------------------


@pytest.mark.parametrize("on", ["hash", "eq"])
@pytest.mark.parametrize("call", ["positional", "keyword"])
def test_key_error_from_hash_or_eq_is_a_lookup_error(registry, caplog, on, call):
    """A KeyError raised by an argument's __hash__ or __eq__ is not a miss: as any other lookup
    error, it is counted, logged, and the method is computed without the cache."""
    calls = []
    Model = value_model(registry, calls)
    m = Model()
    stored = Colliding("stored")
    assert m.f(stored) == ("value", stored)  # something to compare with
    bad = Colliding("bad", KeyError("from user code"), on)
    with caplog.at_level(logging.WARNING, logger="ormcache"):
        result = m.f(bad) if call == "positional" else m.f(x=bad)
    assert result == ("value", bad)
    assert calls == [stored, bad]
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (0, 1, 1)
    assert [key[2] for key in registry.caches["default"].keys()] == [stored]
    assert any("from user code" in r.getMessage() for r in caplog.records if r.name == "ormcache")


class Stop(BaseException):
    pass


@pytest.mark.parametrize("error", [KeyboardInterrupt, Stop])
@pytest.mark.parametrize("on", ["hash", "eq"])
@pytest.mark.parametrize("call", ["positional", "keyword"])
def test_base_exceptions_during_the_lookup_propagate(registry, error, on, call):
    """A KeyboardInterrupt (any BaseException that is not an Exception) raised while the key is
    looked up stops the call: nothing is computed, nothing counted, nothing stored."""
    calls = []
    Model = value_model(registry, calls)
    m = Model()
    stored = Colliding("stored")
    m.f(stored)
    bad = Colliding("bad", error("stop"), on)
    with pytest.raises(error):
        if call == "positional":
            m.f(bad)
        else:
            m.f(x=bad)
    assert calls == [stored]
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (0, 1, 0)
    assert m.f(stored) == ("value", stored) and calls == [stored]  # still cached


def test_a_method_raising_key_error_is_not_a_miss(registry):
    """The method's own KeyError propagates (it is not taken for a missing entry)."""
    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            raise KeyError(x)

    with pytest.raises(KeyError, match="'a'"):
        Model().f("a")
    assert len(registry.caches["default"]) == 0


# -- finding 7: the key layout cannot change under a call ---------------------------------------


def test_reinitialising_the_wrapper_from_an_argument_hash(hit_path, lru_module):
    """An argument's __hash__ re-runs the wrapper's __init__ with a far argument index: the call
    still reads only its own arguments (the compiled wrapper refuses a second __init__; the
    twin is a function, whose type ignores it) and returns the method's value."""
    run_isolated(hit_path.__name__, lru_module.__name__, """
        far = types.SimpleNamespace(
            func=lambda self, x: None, cache_name="default", model=None, has_owner=True,
            key=types.SimpleNamespace(function=lambda self, x: (x,), indices=(10 ** 7,), min_args=2, max_args=2),
        )
        errors = []

        class Evil:
            def __hash__(self):
                try:
                    type(Model.f).__init__(Model.f, far)
                except Exception as exc:
                    errors.append(type(exc))
                    raise
                return 1

        evil = Evil()
        assert Model().f(evil) == ("value", evil)
        # refused (compiled: the lookup failed, computed uncached) or a no-op (the twin's
        # function type ignores it: a plain miss, stored)
        assert calls == [evil] and errors in ([], [RuntimeError]), (calls, errors)
        assert counter().err == len(errors) and len(registry.caches["default"]) == 1 - len(errors)
        assert Model().f(2) == ("value", 2) and Model().f(2) == ("value", 2) and calls == [evil, 2]
        print("ok")
    """)


def test_compiled_wrapper_init_runs_once(registry):
    from ormcache import _cache_c

    calls = []
    Model = value_model(registry, calls)
    spec = Model.f.__cache__
    if isinstance(Model.f, _cache_c.CachedMethod):
        with pytest.raises(RuntimeError, match="called twice"):
            Model.f.__init__(spec)
    fresh = _cache_c.CachedMethod.__new__(_cache_c.CachedMethod)
    with pytest.raises(TypeError, match="not initialised"):
        fresh(Model(), 1)
    assert Model().f(1) == ("value", 1) and Model().f(1) == ("value", 1) and calls == [1]


# -- finding 10: a miss hashes the key at most twice ---------------------------------------------


class CountedHash:
    """Counts its __hash__ calls; fails from call number ``fail_from`` on (if given)."""

    def __init__(self, fail_from=None):
        self.hashes = 0
        self.fail_from = fail_from

    def __hash__(self):
        self.hashes += 1
        if self.fail_from is not None and self.hashes >= self.fail_from:
            raise TypeError(f"hash call {self.hashes} fails")
        return 12345

    def __eq__(self, other):
        return self is other


@pytest.mark.parametrize("call", ["positional", "keyword"])
def test_a_miss_hashes_the_key_at_most_twice(registry, call):
    calls = []
    Model = value_model(registry, calls)
    m = Model()
    key = CountedHash()
    f = (lambda: m.f(key)) if call == "positional" else (lambda: m.f(x=key))
    assert f() == ("value", key)
    assert calls == [key] and 1 <= key.hashes <= 2, key.hashes
    after_miss = key.hashes
    assert f() == ("value", key) and calls == [key]
    assert key.hashes == after_miss + 1  # a hit hashes once
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (1, 1, 0)


@pytest.mark.parametrize("call", ["positional", "keyword"])
def test_a_key_whose_hash_fails_from_its_second_call_is_computed_uncached(registry, caplog, call):
    calls = []
    Model = value_model(registry, calls)
    m = Model()
    key = CountedHash(fail_from=2)
    with caplog.at_level(logging.WARNING, logger="ormcache"):
        result = m.f(key) if call == "positional" else m.f(x=key)
    assert result == ("value", key) and calls == [key]
    counter = counter_of(registry, Model)
    assert counter.err == 1 and counter.hit == 0
    assert len(registry.caches["default"]) == 0
    assert any("hash call 2 fails" in r.getMessage() for r in caplog.records if r.name == "ormcache")


def test_concurrent_waiters_do_not_hash_again(registry):
    """A thread that waits for another's computation of the same key finds the value without
    hashing the key once more than its own lookup and flight registration."""
    import threading

    started, release = threading.Event(), threading.Event()
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            calls.append(x)
            started.set()
            assert release.wait(30)
            return "v"

    key = CountedHash()
    results = []
    first = threading.Thread(target=lambda: results.append(Model().f(key)))
    first.start()
    assert started.wait(30)
    before = key.hashes
    second = threading.Thread(target=lambda: results.append(Model().f(key)))
    second.start()
    from ormcache import _cold

    for _ in range(30000):  # until the second thread waits for the first one's flight
        if second.ident in _cold._waiting:
            break
        threading.Event().wait(0.001)
    assert second.ident in _cold._waiting and second.is_alive()
    release.set()
    first.join(30)
    second.join(30)
    assert results == ["v", "v"] and len(calls) == 1
    assert key.hashes - before <= 2, key.hashes - before


# -- CPython 3.14 caches a tuple's hash in the tuple ---------------------------------------------


@pytest.mark.parametrize("shape", ["one", "two"])
def test_many_distinct_keys_in_a_row_all_hit(registry, shape):
    """The compiled hit path refills one probe tuple per wrapper: on CPython 3.14, which caches
    a tuple's hash inside it (gh-131525), a stale hash would make every later key miss."""
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def one(self, x):
            calls.append(x)
            return x

        @cached("x", "y")
        def two(self, x, y):
            calls.append((x, y))
            return (x, y)

    m = Model()
    f = m.one if shape == "one" else (lambda i: m.two(i, -i))
    expected = [i if shape == "one" else (i, -i) for i in range(300)]
    assert [f(i) for i in range(300)] == expected
    assert [f(i) for i in range(300)] == expected
    assert [f(i) for i in reversed(range(300))] == expected[::-1]
    for i in range(300):  # alternating keys, each a hit
        assert f(i) == expected[i] and f(299 - i) == expected[299 - i]
    assert calls == expected
    counter = registry.counters[("m", (Model.one if shape == "one" else Model.two).__wrapped__)]
    assert (counter.miss, counter.hit, counter.err) == (300, 300 + 300 + 600, 0)


def test_stored_keys_are_tuples_equal_to_the_plain_key(registry):
    """A miss stores the hit path's HashedKey: a tuple, equal to and hashed as the plain key,
    sliced and pickled as a plain tuple."""
    import copy
    import pickle

    calls = []
    Model = value_model(registry, calls)
    Model().f("a")
    (key,) = registry.caches["default"].keys()
    plain = ("m", Model.f.__wrapped__, "a")
    assert isinstance(key, tuple) and type(key) is not tuple
    assert key == plain and plain == key and hash(key) == hash(plain)
    assert type(key[1:]) is tuple and key[2:] == ("a",)
    assert registry.caches["default"][plain] == ("value", "a")
    hashed = type(key)(("m", 1, (2, "x")))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(hashed, protocol))
        assert (type(back), back, hash(back)) == (tuple, ("m", 1, (2, "x")), hash(("m", 1, (2, "x"))))
    assert type(copy.copy(hashed)) is tuple and copy.deepcopy(hashed) == hashed
    with pytest.raises(TypeError):  # unhashable items: the hash fails, every time
        hash(type(key)(([],)))
    with pytest.raises(TypeError):
        hash(type(key)(([],)))


@pytest.mark.c_extension
def test_compiled_probe_tuple_survives_misses_and_lookup_errors(monkeypatch):
    """The compiled hit path keeps reusing its probe tuple after a miss (whose KeyError held
    it) and after a lookup error: a hit allocates no key (white-box: the wrapper still holds a
    3-tuple of (model, method, None)). On the compiled engine, whose errors keep no frames (the
    twin's traceback would hold the probe, which is then rightly given up)."""
    import gc

    from fastlru._lru_c import LRU
    from ormcache import _cache_c, decorators

    monkeypatch.setattr(decorators, "_impl", _cache_c)
    name = "probe-tuple-registry"
    registry = Registry(name, lru_factory=LRU)
    try:
        calls = []
        Model = value_model(registry, calls)

        def probe():
            found = [r for r in gc.get_referents(Model.f) if type(r) is tuple and len(r) == 3]
            return found[0] if found else None

        m = Model()
        assert probe() == (None, None, None)
        m.f(1)  # a miss
        m.f(1)  # a hit
        assert probe() is not None and probe()[2] is None
        m.f(Colliding("bad", KeyError("user"), "hash"))  # a lookup error
        with pytest.raises(KeyboardInterrupt):
            m.f(Colliding("stop", KeyboardInterrupt(), "hash"))
        assert probe() is not None and probe()[2] is None
        assert m.f(1) == ("value", 1) and calls == [1, calls[1]] and len(calls) == 2
    finally:
        Registry.delete(name)
