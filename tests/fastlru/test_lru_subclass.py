"""Subclasses of ``LRU`` (both implementations): overridden methods are honoured where user
code calls them, and copies and pickles keep the subclass and its attributes."""
import collections.abc
import copy
import gc
import pickle
import weakref

import pytest

import fastlru._lru_c
import fastlru._lru_py


@pytest.fixture(scope="module")
def Sub(lru_module):
    """A subclass that records stores and carries an attribute (module-level name for pickle)."""
    return SUBCLASSES[lru_module.__name__]


class _Recording:
    def __init__(self, count, pairs=(), **kw):
        self.stores = []
        super().__init__(count, pairs, **kw)

    def __setitem__(self, key, value):
        # unpickling stores the pairs before it restores attributes (as for a dict subclass)
        self.__dict__.setdefault("stores", []).append(key)
        super().__setitem__(key, value)


class SubC(_Recording, fastlru._lru_c.LRU):
    pass


class SubPy(_Recording, fastlru._lru_py.LRU):
    pass


SUBCLASSES = {"fastlru._lru_c": SubC, "fastlru._lru_py": SubPy}


def test_subclass_overrides_are_honoured(LRU, Sub):
    assert issubclass(Sub, LRU)
    s = Sub(3, [("a", 1)])
    assert s.stores == ["a"]  # the constructor's pairs go through __setitem__
    s["b"] = 2
    s.update({"c": 3}, d=4)
    assert s.stores == ["a", "b", "c", "d"]
    assert s.keys() == ["d", "c", "b"]
    assert s["c"] == 3 and s.get("b") == 2
    assert isinstance(s, collections.abc.MutableMapping)
    assert isinstance(s, LRU)
    assert repr(s).startswith(f"{Sub.__name__}(3, ")
    assert s == LRU(3, [("d", 4), ("c", 3), ("b", 2)])
    s._check()


def test_fast_paths_do_not_route_through_overrides(LRU):
    # As dict: get(), setdefault(), pop() are their own code, not __getitem__/__setitem__.
    class Loud(LRU):
        def __getitem__(self, key):
            raise AssertionError("__getitem__")

        def __setitem__(self, key, value):
            raise AssertionError("__setitem__")

    s = Loud(3)
    assert s.setdefault("a", 1) == 1
    assert s.get("a") == 1 and s.peek("a") == 1 and "a" in s
    assert s.pop("a") == 1
    with pytest.raises(AssertionError, match="__setitem__"):
        s["b"] = 2
    with pytest.raises(AssertionError, match="__getitem__"):
        s["a"]


def test_subclass_copy_and_pickle_keep_type_and_attributes(Sub):
    s = Sub(3, [("a", 1), ("b", 2)])
    s.label = "mine"
    s.me = s  # a subclass attribute may refer to the cache itself
    for clone in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert type(clone) is Sub
        assert clone.items() == s.items()
        assert clone.label == "mine"
        assert clone.me is clone or clone.me is s  # deep copies and pickles refer to themselves
        assert clone.count == 3
        clone["c"] = 3
        clone._check()
    c = s.copy()
    assert type(c) is Sub and c.items() == s.items()


def test_subclass_with_slots_and_its_own_init(LRU):
    class Named(LRU):
        __slots__ = ("name",)

        def __init__(self, name, count):
            super().__init__(count)
            self.name = name

    n = Named("x", 2)
    n[1] = 1
    n[2] = 2
    n[3] = 3
    assert n.keys() == [3, 2] and n.name == "x"
    c = copy.copy(n)
    assert type(c) is Named and c.name == "x" and c.keys() == [3, 2]


def test_subclass_instances_in_cycles_are_collected(LRU):
    class Sub(LRU):
        pass

    s = Sub(3)
    s.me = s
    s["self"] = s
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None


def test_subclass_on_evict_and_weights(LRU):
    evicted = []

    class Sub(LRU):
        pass

    s = Sub(2, maxweight=3, getsizeof=len, on_evict=lambda k, v: evicted.append(k))
    s["a"] = "xx"
    s["b"] = "x"
    s["c"] = "xx"
    assert s.keys() == ["c", "b"] and evicted == ["a"]
    s._check()
