"""Unit tests of every method of ``fastlru.LRU`` against the contract (notes/API.md)."""
import collections.abc
import sys
import time
import typing
from collections import OrderedDict

import pytest

import fastlru
from support.lru import captured_unraisable


# ---------------------------------------------------------------- helpers

class Recorder:
    """An on_evict callback that records its calls (picklable through the module)."""

    def __init__(self):
        self.calls = []

    def __call__(self, key, value):
        self.calls.append((key, value))


class Boom(Exception):
    pass


def filled(LRU, count, keys, **kw):
    """A cache holding ``key -> key * 10`` for ``keys`` inserted in order (last most recent)."""
    return LRU(count, [(k, k * 10) for k in keys], **kw)


# ---------------------------------------------------------------- construction and count

def test_constructor_pairs_in_order(LRU):
    lru = LRU(5, [("a", 1), ("b", 2), ("c", 3)])
    assert lru.items() == [("c", 3), ("b", 2), ("a", 1)]
    assert len(lru) == 3
    assert lru.count == 5
    lru._check()


def test_constructor_accepts_any_iterable_of_pairs(LRU):
    lru = LRU(5, ((k, v) for k, v in zip("abc", range(3))))
    assert lru.keys() == ["c", "b", "a"]
    lru = LRU(5, iter([["x", 1]]))
    assert lru.items() == [("x", 1)]


def test_constructor_pairs_beyond_count_keep_the_last(LRU):
    lru = LRU(2, [("a", 1), ("b", 2), ("c", 3)])
    assert lru.items() == [("c", 3), ("b", 2)]
    assert lru.info().evictions == 1
    lru._check()


def test_constructor_pairs_repeated_key(LRU):
    lru = LRU(5, [("a", 1), ("b", 2), ("a", 3)])
    assert lru.items() == [("a", 3), ("b", 2)]


def test_constructor_rejects_mapping(LRU):
    # Keys of two characters: a naive ``for k, v in pairs`` would silently unpack them.
    with pytest.raises(TypeError):
        LRU(5, {"ab": 1, "cd": 2})
    with pytest.raises(TypeError):
        LRU(5, OrderedDict([("ab", 1)]))


def test_constructor_defaults(LRU):
    lru = LRU(3)
    assert len(lru) == 0
    assert lru.items() == []
    assert lru.maxweight is None
    assert lru.weight == 0
    assert lru.info() == fastlru.CacheInfo(0, 0, 0, 0, 3)


@pytest.mark.parametrize("count, expected", [(0, 1), (-1, 1), (-(10**30), 1), (1, 1), (True, 1), (False, 1), (7, 7)])
def test_count_below_one_becomes_one(LRU, count, expected):
    lru = LRU(count)
    assert lru.count == expected
    lru["a"] = 1
    lru["b"] = 2
    assert len(lru) == min(2, expected)
    assert lru.info().count == expected


def test_count_keyword_only_options(LRU):
    with pytest.raises(TypeError):
        LRU(3, (), None)  # on_evict is keyword-only


def test_count_one(LRU):
    rec = Recorder()
    lru = LRU(1, on_evict=rec)
    lru["a"] = 1
    assert lru.items() == [("a", 1)]
    lru["b"] = 2
    assert lru.items() == [("b", 2)]
    assert rec.calls == [("a", 1)]
    lru["b"] = 3  # replace: no eviction
    assert lru.items() == [("b", 3)]
    assert rec.calls == [("a", 1)]
    assert lru.get("b") == 3
    assert lru.get("a") is None
    assert lru.info() == fastlru.CacheInfo(1, 1, 1, 1, 1)
    assert lru.popitem() == ("b", 3)
    assert len(lru) == 0
    lru._check()


def test_resize_down_evicts_least_recent(LRU):
    rec = Recorder()
    lru = filled(LRU, 5, [1, 2, 3, 4, 5], on_evict=rec)
    lru[2]  # promote 2
    assert lru.keys() == [2, 5, 4, 3, 1]
    lru.count = 2
    assert lru.count == 2
    assert lru.keys() == [2, 5]
    assert rec.calls == [(1, 10), (3, 30), (4, 40)]
    assert lru.info().evictions == 3
    assert lru.info().count == 2
    assert lru.info().size == 2
    lru._check()


def test_resize_down_to_below_one(LRU):
    lru = filled(LRU, 5, [1, 2, 3])
    lru.count = 0
    assert lru.count == 1
    assert lru.keys() == [3]
    lru.count = -4
    assert lru.count == 1
    assert lru.keys() == [3]


def test_resize_up_keeps_items_and_allows_more(LRU):
    rec = Recorder()
    lru = filled(LRU, 2, [1, 2], on_evict=rec)
    lru.count = 4
    assert lru.count == 4
    assert lru.keys() == [2, 1]
    lru[3] = 30
    lru[4] = 40
    assert lru.keys() == [4, 3, 2, 1]
    assert rec.calls == []
    lru[5] = 50
    assert rec.calls == [(1, 10)]
    assert lru.keys() == [5, 4, 3, 2]
    lru._check()


def test_resize_same_size_no_eviction(LRU):
    rec = Recorder()
    lru = filled(LRU, 3, [1, 2, 3], on_evict=rec)
    lru.count = 3
    assert lru.keys() == [3, 2, 1]
    assert rec.calls == []
    assert lru.info().evictions == 0


# ---------------------------------------------------------------- get / set / peek / contains

def test_getitem_hit_promotes_and_counts(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    assert lru[1] == 10
    assert lru.keys() == [1, 3, 2]
    assert lru.info().hits == 1
    assert lru.info().misses == 0


def test_getitem_miss_raises_keyerror_with_key(LRU):
    lru = filled(LRU, 3, [1, 2])
    key = ("some", "tuple")
    with pytest.raises(KeyError) as exc:
        lru[key]
    assert exc.value.args == (key,)
    assert lru.info().misses == 1
    assert lru.info().hits == 0
    assert lru.keys() == [2, 1]


def test_get_hit_miss_default(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    assert lru.get(1) == 10
    assert lru.keys() == [1, 3, 2]
    assert lru.get(9) is None
    sentinel = object()
    assert lru.get(9, sentinel) is sentinel
    assert lru.get(2, sentinel) == 20
    assert lru.keys() == [2, 1, 3]
    assert lru.info() == fastlru.CacheInfo(2, 2, 0, 3, 3)


def test_get_stored_none_is_a_hit(LRU):
    lru = LRU(3)
    lru["a"] = None
    assert lru.get("a", 5) is None
    assert lru.info().hits == 1


def test_setitem_insert_replace_evict(LRU):
    rec = Recorder()
    lru = LRU(3, on_evict=rec)
    lru["a"] = 1
    lru["b"] = 2
    lru["c"] = 3
    assert lru.items() == [("c", 3), ("b", 2), ("a", 1)]
    lru["a"] = 100  # replace existing: promotes, no eviction
    assert lru.items() == [("a", 100), ("c", 3), ("b", 2)]
    assert rec.calls == []
    lru["d"] = 4  # evicts the least recent, b
    assert lru.items() == [("d", 4), ("a", 100), ("c", 3)]
    assert rec.calls == [("b", 2)]
    assert lru.info().evictions == 1
    assert len(lru) == 3
    lru._check()


def test_replace_most_recent_key(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    lru[3] = "x"
    assert lru.items() == [(3, "x"), (2, 20), (1, 10)]


def test_replace_keeps_identity_of_new_value(LRU):
    lru = LRU(2)
    v1, v2 = [1], [2]
    lru["k"] = v1
    lru["k"] = v2
    assert lru["k"] is v2
    assert len(lru) == 1


def test_equal_keys_of_different_types_share_an_entry(LRU):
    lru = LRU(3)
    lru[1] = "int"
    lru[1.0] = "float"
    assert len(lru) == 1
    assert lru[1] == "float"
    assert lru.get(True) == "float"


def test_peek_no_promotion_no_stats(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    assert lru.peek(1) == 10
    assert lru.peek(9) is None
    assert lru.peek(9, "d") == "d"
    assert lru.keys() == [3, 2, 1]
    assert lru.info() == fastlru.CacheInfo(0, 0, 0, 3, 3)


def test_contains_no_promotion_no_stats(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    assert 1 in lru
    assert 9 not in lru
    assert lru.keys() == [3, 2, 1]
    assert lru.info() == fastlru.CacheInfo(0, 0, 0, 3, 3)


def test_many_keys_with_colliding_hashes(LRU):
    class Collide:
        def __init__(self, n):
            self.n = n

        def __hash__(self):
            return 42

        def __eq__(self, other):
            return isinstance(other, Collide) and other.n == self.n

    keys = [Collide(i) for i in range(20)]
    lru = LRU(10)
    for i, k in enumerate(keys):
        lru[k] = i
    assert len(lru) == 10
    assert [k.n for k in lru.keys()] == list(range(19, 9, -1))
    for i in range(10, 20):
        assert lru[Collide(i)] == i
        assert Collide(i) in lru
    assert Collide(3) not in lru
    del lru[Collide(15)]
    assert Collide(15) not in lru
    assert len(lru) == 9
    lru._check()


def test_large_number_of_keys(LRU):
    lru = LRU(1000)
    for i in range(5000):
        lru[i] = i
    assert len(lru) == 1000
    assert lru.keys() == list(range(4999, 3999, -1))
    assert lru.info().evictions == 4000
    for i in range(4000, 5000):
        assert lru[i] == i
    lru._check()


# ---------------------------------------------------------------- del / pop / popitem / setdefault / clear

def test_delitem(LRU):
    rec = Recorder()
    lru = filled(LRU, 3, [1, 2, 3], on_evict=rec)
    del lru[2]
    assert lru.keys() == [3, 1]
    with pytest.raises(KeyError) as exc:
        del lru[2]
    assert exc.value.args == (2,)
    assert lru.keys() == [3, 1]
    assert rec.calls == []
    assert lru.info().evictions == 0
    lru._check()


def test_pop_is_positional_only(LRU):
    # As dict.pop: no keywords, one or two arguments.
    lru = filled(LRU, 3, [1, 2])
    for call in (lambda: lru.pop(key=1), lambda: lru.pop(1, default=2), lambda: lru.pop(),
                 lambda: lru.pop(1, 2, 3), lambda: lru.pop(3, default=0)):
        with pytest.raises(TypeError):
            call()
    assert lru.items() == [(2, 20), (1, 10)]
    assert lru.pop(1, None) == 10


def test_pop(LRU):
    rec = Recorder()
    lru = filled(LRU, 3, [1, 2, 3], on_evict=rec)
    assert lru.pop(2) == 20
    assert lru.keys() == [3, 1]
    assert lru.pop(2, "dflt") == "dflt"
    assert lru.pop(2, None) is None
    with pytest.raises(KeyError) as exc:
        lru.pop(2)
    assert exc.value.args == (2,)
    assert lru.keys() == [3, 1]
    assert rec.calls == []
    assert lru.info().evictions == 0
    lru._check()


def test_pop_missing_on_empty(LRU):
    lru = LRU(3)
    with pytest.raises(KeyError):
        lru.pop("x")
    assert lru.pop("x", 1) == 1
    assert len(lru) == 0
    lru._check()


def test_popitem_least_recent(LRU):
    rec = Recorder()
    lru = filled(LRU, 3, [1, 2, 3], on_evict=rec)
    lru[1]
    assert lru.popitem() == (2, 20)
    assert lru.popitem() == (3, 30)
    assert lru.popitem() == (1, 10)
    with pytest.raises(KeyError):
        lru.popitem()
    assert len(lru) == 0
    assert rec.calls == []
    assert lru.info().evictions == 0
    lru._check()


def test_setdefault_present_returns_and_promotes(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    assert lru.setdefault(1, "new") == 10
    assert lru.items() == [(1, 10), (3, 30), (2, 20)]


def test_setdefault_absent_inserts(LRU):
    rec = Recorder()
    lru = filled(LRU, 3, [1, 2, 3], on_evict=rec)
    assert lru.setdefault(4, "d") == "d"
    assert lru.items() == [(4, "d"), (3, 30), (2, 20)]
    assert rec.calls == [(1, 10)]
    assert lru.setdefault(5) is None
    assert lru.items() == [(5, None), (4, "d"), (3, 30)]
    assert lru.info().evictions == 2
    lru._check()


def test_clear(LRU):
    rec = Recorder()
    lru = filled(LRU, 3, [1, 2, 3], on_evict=rec)
    lru.clear()
    assert len(lru) == 0
    assert lru.items() == []
    assert list(lru) == []
    assert 1 not in lru
    assert rec.calls == []
    assert lru.info().evictions == 0
    assert lru.info().size == 0
    assert lru.count == 3
    lru[5] = 50
    assert lru.items() == [(5, 50)]
    lru._check()


# ---------------------------------------------------------------- update

def test_update_from_pairs(LRU):
    lru = filled(LRU, 5, [1])
    lru.update([(2, 20), (3, 30), (1, 11)])
    assert lru.items() == [(1, 11), (3, 30), (2, 20)]


def test_update_from_dict_in_order(LRU):
    lru = LRU(5)
    lru.update({"a": 1, "b": 2})
    assert lru.items() == [("b", 2), ("a", 1)]


def test_update_from_kwargs_after_positional(LRU):
    lru = LRU(5)
    lru.update([("a", 1), ("x", 0)], x=9, y=8)
    assert lru.items() == [("y", 8), ("x", 9), ("a", 1)]
    lru2 = LRU(5)
    lru2.update(k=1)
    assert lru2.items() == [("k", 1)]


def test_update_from_mapping_and_keys_object(LRU):
    class KeysOnly:
        def keys(self):
            return ["p", "q"]

        def __getitem__(self, k):
            return k.upper()

    lru = LRU(5)
    lru.update(KeysOnly())
    assert dict(lru.items()) == {"p": "P", "q": "Q"}
    other = LRU(5, [("m", 1), ("n", 2)])
    lru.update(other)
    assert dict(lru.items()) == {"p": "P", "q": "Q", "m": 1, "n": 2}
    lru._check()


def test_update_no_args_and_empty(LRU):
    lru = filled(LRU, 3, [1, 2])
    lru.update()
    lru.update([])
    lru.update({})
    assert lru.keys() == [2, 1]


def test_update_evicts(LRU):
    rec = Recorder()
    lru = LRU(2, on_evict=rec)
    lru.update([(i, i) for i in range(5)])
    assert lru.items() == [(4, 4), (3, 3)]
    assert rec.calls == [(0, 0), (1, 1), (2, 2)]
    assert lru.info().evictions == 3


def test_update_two_positional_is_typeerror(LRU):
    lru = filled(LRU, 3, [1])
    with pytest.raises(TypeError):
        lru.update([(2, 2)], [(3, 3)])
    assert lru.keys() == [1]


# ---------------------------------------------------------------- views and iteration

def test_keys_values_items_are_lists_most_recent_first(LRU):
    lru = filled(LRU, 4, [1, 2, 3])
    lru[2]
    assert type(lru.keys()) is list
    assert type(lru.values()) is list
    assert type(lru.items()) is list
    assert lru.keys() == [2, 3, 1]
    assert lru.values() == [20, 30, 10]
    assert lru.items() == [(2, 20), (3, 30), (1, 10)]
    # Views are snapshots.
    ks = lru.keys()
    lru[9] = 90
    assert ks == [2, 3, 1]


def test_iter_and_reversed_order(LRU):
    lru = filled(LRU, 4, [1, 2, 3, 4])
    lru[1]
    assert list(lru) == [1, 4, 3, 2]
    assert list(reversed(lru)) == [2, 3, 4, 1]
    assert lru.info().hits == 1  # iterating does not count


def test_iter_does_not_promote(LRU):
    lru = filled(LRU, 4, [1, 2, 3])
    for _ in lru:
        pass
    for _ in reversed(lru):
        pass
    assert lru.keys() == [3, 2, 1]
    assert lru.info() == fastlru.CacheInfo(0, 0, 0, 3, 4)


def test_iter_empty(LRU):
    lru = LRU(3)
    assert list(lru) == []
    assert list(reversed(lru)) == []
    it = iter(lru)
    with pytest.raises(StopIteration):
        next(it)


MUTATIONS = {
    "insert": lambda lru: lru.__setitem__(99, 990),
    "insert-evicting": lambda lru: (lru.__setitem__(98, 980), lru.__setitem__(99, 990)),
    "replace": lambda lru: lru.__setitem__(2, 21),
    "replace-same-value": lambda lru: lru.__setitem__(2, 20),
    "delete": lambda lru: lru.__delitem__(2),
    "pop": lambda lru: lru.pop(2),
    "popitem": lambda lru: lru.popitem(),
    "hit-getitem": lambda lru: lru[1],
    "hit-get": lambda lru: lru.get(1),
    "setdefault-present": lambda lru: lru.setdefault(1),
    "setdefault-absent": lambda lru: lru.setdefault(77, 1),
    "update": lambda lru: lru.update({50: 1}),
    "clear": lambda lru: lru.clear(),
    "resize-down": lambda lru: setattr(lru, "count", 2),
}


@pytest.mark.parametrize("direction", ["forward", "reversed"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutation_during_iteration_raises(LRU, mutation, direction):
    lru = LRU(5, [(k, k * 10) for k in (1, 2, 3, 4, 5)])
    it = iter(lru) if direction == "forward" else reversed(lru)
    first = next(it)
    assert first == (5 if direction == "forward" else 1)
    MUTATIONS[mutation](lru)
    with pytest.raises(RuntimeError):
        next(it)
    lru._check()
    assert len(lru) == len(list(lru))


@pytest.mark.parametrize("direction", ["forward", "reversed"])
def test_mutation_after_last_item_still_raises(LRU, direction):
    # "makes the next next() raise": also when the iterator stood on its last item.
    lru = filled(LRU, 5, [1, 2, 3])
    it = iter(lru) if direction == "forward" else reversed(lru)
    assert [next(it), next(it), next(it)] == ([3, 2, 1] if direction == "forward" else [1, 2, 3])
    lru[9] = 90
    with pytest.raises(RuntimeError):
        next(it)


@pytest.mark.parametrize("direction", ["forward", "reversed"])
def test_mutation_before_the_first_step_raises(LRU, direction):
    # As dict: the iterator's snapshot is taken by iter(), not by its first next().
    lru = filled(LRU, 5, [1, 2, 3])
    it = iter(lru) if direction == "forward" else reversed(lru)
    lru[3] = 3
    with pytest.raises(RuntimeError):
        list(it)
    with pytest.raises(RuntimeError):
        next(it)  # and it keeps raising, as dict's does


@pytest.mark.parametrize("direction", ["forward", "reversed"])
def test_exhausted_iterator_stays_exhausted(LRU, direction):
    # As dict: once StopIteration was raised, later changes to the cache do not matter.
    lru = filled(LRU, 5, [1, 2])
    it = iter(lru) if direction == "forward" else reversed(lru)
    assert len(list(it)) == 2
    lru[9] = 90
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("direction", ["forward", "reversed"])
def test_reads_during_iteration_do_not_raise(LRU, direction):
    lru = filled(LRU, 5, [1, 2, 3, 4])
    it = iter(lru) if direction == "forward" else reversed(lru)
    got = [next(it)]
    assert lru.peek(2) == 20
    assert 3 in lru
    assert 99 not in lru
    assert len(lru) == 4
    assert lru.items() == [(4, 40), (3, 30), (2, 20), (1, 10)]
    lru.copy()
    lru.info()
    got.extend(it)
    assert got == ([4, 3, 2, 1] if direction == "forward" else [1, 2, 3, 4])


def test_iterators_are_independent(LRU):
    lru = filled(LRU, 5, [1, 2, 3])
    a, b = iter(lru), iter(lru)
    assert next(a) == 3
    assert list(b) == [3, 2, 1]
    assert list(a) == [2, 1]
    assert iter(a) is a


# ---------------------------------------------------------------- eq / repr (copy and pickle: test_pickle.py)

def test_eq_with_lru_is_order_sensitive(LRU):
    a = filled(LRU, 3, [1, 2])
    b = filled(LRU, 3, [1, 2])
    c = filled(LRU, 3, [2, 1])
    d = filled(LRU, 10, [1, 2])
    assert a == b
    assert not (a != b)
    assert a != c
    assert not (a == c)
    assert a == d  # count is not compared
    assert LRU(1) == LRU(5)
    b[2] = 21
    assert a != b


def test_eq_with_mapping_ignores_order(LRU):
    a = filled(LRU, 3, [1, 2])
    assert a == {1: 10, 2: 20}
    assert a == {2: 20, 1: 10}
    assert {2: 20, 1: 10} == a
    assert a == OrderedDict([(2, 20), (1, 10)])
    assert a != {1: 10}
    assert a != {1: 10, 2: 21}
    assert a != {1: 10, 2: 20, 3: 30}
    assert LRU(3) == {}


def test_eq_with_other_types_is_notimplemented(LRU):
    a = filled(LRU, 3, [1, 2])
    assert a.__eq__(5) is NotImplemented
    assert a.__eq__([(1, 10), (2, 20)]) is NotImplemented
    assert a != [(2, 20), (1, 10)]
    assert not (a == None)  # noqa: E711
    assert a != "x"


def test_unhashable(LRU):
    lru = LRU(3)
    assert LRU.__hash__ is None
    with pytest.raises(TypeError):
        hash(lru)
    assert not isinstance(lru, collections.abc.Hashable)


def test_repr_exact(LRU):
    lru = LRU(3, [("a", 1), ("b", 2)])
    assert repr(lru) == "LRU(3, [('a', 1), ('b', 2)])"
    lru["a"]
    assert repr(lru) == "LRU(3, [('b', 2), ('a', 1)])"
    assert repr(LRU(0)) == "LRU(1, [])"


def test_repr_eval_round_trip(LRU):
    lru = LRU(10, [(1, "one"), ("two", 2.5), ((3, "x"), None), (None, [1, 2]), (-4, {"d": 1}), (b"b", frozenset())])
    lru[1]
    again = eval(repr(lru), {"LRU": LRU})
    assert type(again) is type(lru)
    assert again == lru
    assert again.items() == lru.items()
    assert again.count == lru.count


# ---------------------------------------------------------------- info / typing / ABC

def test_info_counters(LRU):
    lru = LRU(2)
    info = lru.info()
    assert isinstance(info, fastlru.CacheInfo)
    assert info == (0, 0, 0, 0, 2)
    lru["a"] = 1
    lru["b"] = 2
    lru["a"]  # hit
    lru.get("b")  # hit
    lru.get("x")  # miss
    with pytest.raises(KeyError):
        lru["y"]  # miss
    lru.peek("a")
    "a" in lru
    lru["c"] = 3  # evicts a
    assert lru.info() == fastlru.CacheInfo(hits=2, misses=2, evictions=1, size=2, count=2)
    lru.pop("c")
    del lru["b"]
    assert lru.info() == fastlru.CacheInfo(2, 2, 1, 0, 2)
    lru["d"] = 4
    lru["e"] = 5
    lru.popitem()
    lru.clear()
    assert lru.info().evictions == 1
    lru.count = 5
    assert lru.info().count == 5
    info = lru.info()
    assert (info.hits, info.misses, info.evictions, info.size, info.count) == (2, 2, 1, 0, 5)


def test_mutable_mapping_registration(LRU):
    lru = LRU(2)
    assert isinstance(lru, collections.abc.MutableMapping)
    assert isinstance(lru, collections.abc.Mapping)
    assert issubclass(LRU, collections.abc.MutableMapping)
    assert isinstance(lru, collections.abc.Sized)
    assert isinstance(lru, collections.abc.Iterable)
    assert isinstance(lru, collections.abc.Container)
    assert isinstance(lru, collections.abc.Reversible)


def test_generic_alias(LRU):
    alias = LRU[str, int]
    assert typing.get_origin(alias) is LRU
    assert typing.get_args(alias) == (str, int)

    def f(x: LRU[str, int]) -> "LRU[str, int]":
        return x

    hints = typing.get_type_hints(f, localns={"LRU": LRU})
    assert hints["x"] == LRU[str, int]
    assert hints["return"] == LRU[str, int]
    lru = alias(3)  # a GenericAlias is callable
    assert isinstance(lru, LRU)


# ---------------------------------------------------------------- on_evict

def test_on_evict_called_only_for_capacity_weight_and_resize(LRU):
    rec = Recorder()
    lru = LRU(3, on_evict=rec)
    lru.update([(1, "a"), (2, "b"), (3, "c")])
    lru[1] = "a2"  # replace
    del lru[2]  # del
    lru.pop(3)  # pop
    lru.update([(4, "d"), (5, "e")])
    lru.popitem()  # popitem: 1
    lru.pop(9, None)
    lru.clear()
    assert rec.calls == []
    lru.update([(1, 1), (2, 2), (3, 3), (4, 4)])  # capacity
    assert rec.calls == [(1, 1)]
    lru.count = 1  # resize
    assert rec.calls == [(1, 1), (2, 2), (3, 3)]
    lru.setdefault(5, 5)  # capacity through setdefault
    assert rec.calls == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert lru.info().evictions == 4


def test_on_evict_sees_a_consistent_cache(LRU):
    seen = []

    def on_evict(key, value):
        lru._check()
        seen.append((key, value, key in lru, lru.keys(), len(lru), len(list(lru)), lru.info().size))

    lru = LRU(2, [("a", 1), ("b", 2)], on_evict=on_evict)
    lru["c"] = 3
    assert seen == [("a", 1, False, ["c", "b"], 2, 2, 2)]
    seen.clear()
    lru.count = 1
    assert seen == [("b", 2, False, ["c"], 1, 1, 1)]


def test_on_evict_exception_goes_to_unraisablehook(LRU):
    def on_evict(key, value):
        raise Boom(key)

    lru = LRU(1, on_evict=on_evict)
    lru["a"] = 1
    with captured_unraisable() as seen:
        lru["b"] = 2  # the operation still succeeds
    assert lru.items() == [("b", 2)]
    assert len(seen) == 1
    assert seen[0].exc_type is Boom
    assert isinstance(seen[0].exc_value, Boom)
    assert seen[0].exc_value.args == ("a",)
    assert lru.info().evictions == 1
    lru._check()


def test_on_evict_exception_every_victim_still_reported(LRU):
    calls = []

    def on_evict(key, value):
        calls.append(key)
        raise Boom(key)

    lru = LRU(5, [(k, k) for k in range(5)], on_evict=on_evict)
    with captured_unraisable() as seen:
        lru.count = 2
    assert lru.keys() == [4, 3]
    assert [a.exc_value.args[0] for a in seen] == [0, 1, 2]
    assert calls == [0, 1, 2]
    lru._check()


def test_on_evict_none_is_fine(LRU):
    lru = LRU(1, on_evict=None)
    lru[1] = 1
    lru[2] = 2
    assert lru.items() == [(2, 2)]


def test_large_count_reads_back(LRU):
    # "values < 1 become 1" is the only normalisation of count: ``LRU(sys.maxsize)`` is the
    # usual way to ask for an (in practice) unbounded cache, and reads back as given.
    big = LRU(sys.maxsize)
    assert big.count == sys.maxsize
    assert big.info().count == sys.maxsize
    big.count = 2**40
    assert big.count == 2**40
    big.update((i, i) for i in range(100))
    assert len(big) == 100
    assert big.info().evictions == 0


def test_repr_of_a_cache_containing_itself(LRU):
    lru = LRU(3)
    lru["s"] = lru
    assert repr(lru) == "LRU(3, [('s', ...)])"
    lru["t"] = [lru]
    assert repr(lru) == "LRU(3, [('s', ...), ('t', [...])])"


def test_iterator_outlives_its_name(LRU):
    lru = filled(LRU, 3, [1, 2, 3])
    it = iter(lru)
    rit = reversed(lru)
    del lru
    assert list(it) == [3, 2, 1]
    assert list(rit) == [1, 2, 3]


def test_constructor_pairs_not_iterable(LRU):
    with pytest.raises(TypeError):
        LRU(3, 5)
    with pytest.raises(TypeError):
        LRU(3, None)


def test_update_keyword_named_self(LRU):
    # Like dict.update: any keyword is a key, "self" included.
    lru = LRU(5)
    lru.update(self=1)
    assert lru.items() == [("self", 1)]
    lru.update([("a", 2)], self=3)
    assert lru.items() == [("self", 3), ("a", 2)]


# ---------------------------------------------------------------- issue #12: statistics, messages, repr

def test_info_names_maxsize_and_currsize_as_functools(LRU):
    lru = LRU(3, [(1, 1), (2, 2)])
    info = lru.info()
    assert info.maxsize == info.count == 3
    assert info.currsize == info.size == 2
    hits, misses, evictions, size, count = info  # still five fields, in the same order
    assert (hits, misses, evictions, size, count) == (0, 0, 0, 2, 3)
    assert info == fastlru.CacheInfo(0, 0, 0, 2, 3)


def test_clear_stats_resets_the_counters_and_clear_keeps_them(LRU):
    lru = LRU(1)
    lru["a"] = 1
    lru["b"] = 2
    lru["b"]
    lru.get("a")
    lru.clear()
    assert lru.info() == fastlru.CacheInfo(1, 1, 1, 0, 1)  # clear() keeps the counters
    lru["c"] = 3
    lru.clear_stats()
    assert lru.info() == fastlru.CacheInfo(0, 0, 0, 1, 1)
    assert lru.items() == [("c", 3)]  # clear_stats() keeps the entries
    lru["c"]
    assert lru.info().hits == 1


@pytest.mark.parametrize("pairs", [[1, 2, 3], ["abc"], [(1, 2), (3,)], [(1, 2, 3)], [None]])
def test_constructor_says_pairs_are_expected(LRU, pairs):
    with pytest.raises(TypeError, match=r"pairs must be \(key, value\) pairs; item \d is not a pair"):
        LRU(3, pairs)


def test_constructor_refuses_a_non_iterable_pairs(LRU):
    with pytest.raises(TypeError, match=r"pairs must be an iterable of \(key, value\) pairs, not int"):
        LRU(3, 5)


def test_update_with_a_bad_pair_stores_nothing(LRU):
    lru = LRU(5, [("a", 1)])
    with pytest.raises(TypeError, match=r"item 1 is not a pair"):
        lru.update([("b", 2), 3])
    assert lru.items() == [("a", 1)]
    lru.update([["c", 3], "de"])  # any two-item iterable is a pair, as for dict
    assert lru.items() == [("d", "e"), ("c", 3), ("a", 1)]


def test_repr_keeps_every_constructor_argument(LRU):
    lru = LRU(3, [("a", "xy")], maxweight=5, getsizeof=len)
    assert repr(lru) == "LRU(3, [('a', 'xy')], maxweight=5, getsizeof=<built-in function len>)"
    lru = LRU(3, maxweight=5)
    assert repr(lru) == "LRU(3, [], maxweight=5)"
    lru = LRU(2, [(1, 2)], on_evict=print, ttl=1.5)
    assert repr(lru) == "LRU(2, [(1, 2)], on_evict=<built-in function print>, ttl=1.5)"
    again = eval("LRU(3, [('a', 'xy')], maxweight=5, ttl=7)", {"LRU": LRU})
    assert (again.maxweight, again.ttl, again.items()) == (5, 7.0, [("a", "xy")])


def test_repr_is_identical_on_both_engines():
    import fastlru._lru_c
    import fastlru._lru_py

    def build(cls):
        return cls(4, [(1, "a"), (2, "b")], on_evict=print, maxweight=9, getsizeof=len, ttl=3,
                   timer=time.perf_counter)

    assert repr(build(fastlru._lru_c.LRU)) == repr(build(fastlru._lru_py.LRU))


# ---------------------------------------------------------------- index load

@pytest.mark.parametrize("count", [4, 8, 64, 8192, 5000])
def test_index_stays_under_half_full(LRU, count):
    # A count that is a power of two (Odoo's 8192) used to run its open-addressing index at
    # exactly half load, where linear probing's clusters are longest and every full store
    # (miss probe, backward-shift deletion of the evicted entry) walks them. _check() asserts
    # the load; the twin's index size is also read directly.
    lru = LRU(count)
    for k in range(3 * count):  # fills, then every store evicts
        lru[k] = k
        if k % 97 == 0 or k == count - 1:
            lru._check()
    assert len(lru) == count
    lru._check()
    if hasattr(lru, "_mask"):  # the pure-Python twin
        assert lru._mask + 1 > 2 * len(lru)
    lru.count = count // 2  # the arena is compacted and the index rebuilt for the survivors
    assert len(lru) == count // 2
    lru._check()
    if hasattr(lru, "_mask"):
        assert lru._mask + 1 > 2 * len(lru)
