"""Bad input: every case checks the exception type AND that the cache is exactly as before
(same items in the same order, same info(), same weight, no on_evict call)."""
import pytest


class Boom(Exception):
    pass


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, key, value):
        self.calls.append((key, value))


class BadHash:
    """A key whose ``__hash__`` raises."""

    def __hash__(self):
        raise Boom("hash")

    def __eq__(self, other):  # pragma: no cover - must never be reached
        raise AssertionError("__eq__ of a key whose hash failed")


class Unhashable:
    __hash__ = None


def snapshot(lru):
    return (lru.items(), lru.info(), lru.weight, lru.count, len(lru), lru.maxweight)


def weigh(value):
    """getsizeof for the tests: the value's ``w`` attribute if it has one, else len()."""
    return value.w if isinstance(value, Weighted) else len(value)


class Weighted:
    def __init__(self, w):
        self.w = w

    def __repr__(self):
        return f"Weighted({self.w!r})"


def full_cache(LRU, rec, **kw):
    """Count 3, full (the next insert would evict), with a hit and a miss on record."""
    lru = LRU(3, [("a", "aa"), ("b", "bb"), ("c", "cc")], on_evict=rec, **kw)
    lru["a"]
    lru.get("zz")
    return lru


def assert_unchanged(lru, before, rec):
    assert snapshot(lru) == before
    assert rec.calls == []
    lru._check()
    assert len(lru) == len(list(lru))


# ------------------------------------------------------------------ keys

KEY_OPS = {
    "getitem": lambda lru, k: lru[k],
    "get": lambda lru, k: lru.get(k),
    "get-default": lambda lru, k: lru.get(k, 1),
    "peek": lambda lru, k: lru.peek(k),
    "contains": lambda lru, k: k in lru,
    "setitem": lambda lru, k: lru.__setitem__(k, "vv"),
    "delitem": lambda lru, k: lru.__delitem__(k),
    "pop": lambda lru, k: lru.pop(k),
    "pop-default": lambda lru, k: lru.pop(k, None),
    "setdefault": lambda lru, k: lru.setdefault(k, "vv"),
    "update-pairs": lambda lru, k: lru.update([(k, "vv")]),
    "update-dict-like": lambda lru, k: lru.update(_KeysObject(k)),
}


class _KeysObject:
    def __init__(self, key):
        self.key = key

    def keys(self):
        return [self.key]

    def __getitem__(self, key):
        return "vv"


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("op", sorted(KEY_OPS))
@pytest.mark.parametrize("key", [[], {}, {1}, Unhashable(), ("t", [])], ids=["list", "dict", "set", "hash-None", "tuple-with-list"])
def test_unhashable_key(LRU, op, key, weighted):
    rec = Recorder()
    lru = full_cache(LRU, rec, **({"maxweight": 100, "getsizeof": weigh} if weighted else {}))
    before = snapshot(lru)
    with pytest.raises(TypeError):
        KEY_OPS[op](lru, key)
    assert_unchanged(lru, before, rec)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("op", sorted(KEY_OPS))
def test_key_whose_hash_raises(LRU, op, weighted):
    rec = Recorder()
    lru = full_cache(LRU, rec, **({"maxweight": 100, "getsizeof": weigh} if weighted else {}))
    before = snapshot(lru)
    with pytest.raises(Boom):
        KEY_OPS[op](lru, BadHash())
    assert_unchanged(lru, before, rec)


def test_key_whose_hash_raises_other_exception_types(LRU):
    class HashKeyError:
        def __hash__(self):
            raise KeyError("inner")

    class HashRecursion:
        def __hash__(self):
            raise RecursionError("deep")

    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    # A KeyError from __hash__ must not be mistaken for a miss with a default.
    with pytest.raises(KeyError) as exc:
        lru.pop(HashKeyError(), "default")
    assert exc.value.args == ("inner",)
    with pytest.raises(KeyError):
        lru.get(HashKeyError(), "default")
    with pytest.raises(RecursionError):
        lru[HashRecursion()] = 1
    assert_unchanged(lru, before, rec)


def test_bad_key_in_constructor_pairs(LRU):
    with pytest.raises(TypeError):
        LRU(3, [("a", 1), ([], 2)])
    with pytest.raises(Boom):
        LRU(3, [(BadHash(), 2)])


# ------------------------------------------------------------------ count

@pytest.mark.parametrize("bad", ["3", 3.0, 2.5, None, [3], b"3", 1j])
def test_non_int_count_in_constructor(LRU, bad):
    with pytest.raises(TypeError):
        LRU(bad)


@pytest.mark.parametrize("bad", ["3", 3.0, 2.5, None, [3]])
def test_non_int_count_assignment(LRU, bad):
    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    with pytest.raises(TypeError):
        lru.count = bad
    assert_unchanged(lru, before, rec)


def test_count_cannot_be_deleted(LRU):
    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    with pytest.raises((AttributeError, TypeError)):
        del lru.count
    assert_unchanged(lru, before, rec)


# ------------------------------------------------------------------ getsizeof results

BAD_WEIGHTS = [
    ("negative", -1, ValueError),
    ("very-negative", -(10**30), ValueError),
    ("float", 1.0, TypeError),
    ("float-nan", float("nan"), TypeError),
    ("str", "1", TypeError),
    ("none", None, TypeError),
    ("heavier-than-maxweight", 11, ValueError),
    ("huge", 10**30, ValueError),
]

WEIGHT_OPS = {
    "setitem-new": lambda lru, v: lru.__setitem__("new", v),
    "setitem-replace": lambda lru, v: lru.__setitem__("b", v),
    "setitem-replace-most-recent": lambda lru, v: lru.__setitem__("a", v),
    "setdefault-absent": lambda lru, v: lru.setdefault("new", v),
    "update-pairs": lambda lru, v: lru.update([("new", v)]),
    "update-replace": lambda lru, v: lru.update([("c", v)]),
    "update-kwargs": lambda lru, v: lru.update(new=v),
}


@pytest.mark.parametrize("op", sorted(WEIGHT_OPS))
@pytest.mark.parametrize("name, weight, exc", BAD_WEIGHTS, ids=[b[0] for b in BAD_WEIGHTS])
def test_getsizeof_bad_result(LRU, op, name, weight, exc):
    rec = Recorder()
    lru = full_cache(LRU, rec, maxweight=10, getsizeof=weigh)
    before = snapshot(lru)
    with pytest.raises(exc):
        WEIGHT_OPS[op](lru, Weighted(weight))
    assert_unchanged(lru, before, rec)
    # The old value under the key stays.
    assert lru.peek("b") == "bb"
    assert lru.peek("c") == "cc"


@pytest.mark.parametrize("op", sorted(WEIGHT_OPS))
def test_getsizeof_raises(LRU, op):
    def getsizeof(value):
        if value == "bad":
            raise Boom("sizeof")
        return len(value)

    rec = Recorder()
    lru = full_cache(LRU, rec, maxweight=10, getsizeof=getsizeof)
    before = snapshot(lru)
    with pytest.raises(Boom):
        WEIGHT_OPS[op](lru, "bad")
    assert_unchanged(lru, before, rec)


def test_getsizeof_bad_result_in_constructor(LRU):
    with pytest.raises(ValueError):
        LRU(3, [("a", Weighted(-1))], maxweight=10, getsizeof=weigh)
    with pytest.raises(TypeError):
        LRU(3, [("a", Weighted(None))], maxweight=10, getsizeof=weigh)
    with pytest.raises(Boom):
        LRU(3, [("a", "x")], maxweight=10, getsizeof=lambda v: (_ for _ in ()).throw(Boom()))


def test_heavier_item_with_weights_of_one(LRU):
    # maxweight=0 without getsizeof: every item weighs 1, so nothing fits.
    rec = Recorder()
    lru = LRU(3, maxweight=0, on_evict=rec)
    before = snapshot(lru)
    with pytest.raises(ValueError):
        lru["a"] = 1
    with pytest.raises(ValueError):
        lru.setdefault("a", 1)
    assert_unchanged(lru, before, rec)


# ------------------------------------------------------------------ constructor options

@pytest.mark.parametrize("bad", [5, "print", object(), (1, 2)])
def test_on_evict_not_callable(LRU, bad):
    with pytest.raises(TypeError):
        LRU(3, on_evict=bad)


@pytest.mark.parametrize("bad", ["10", 10.0, 2.5, [10], object()])
def test_maxweight_not_int(LRU, bad):
    with pytest.raises(TypeError):
        LRU(3, maxweight=bad)
    with pytest.raises(TypeError):
        LRU(3, maxweight=bad, getsizeof=len)


@pytest.mark.parametrize("bad", [-1, -(10**30)])
def test_maxweight_negative(LRU, bad):
    with pytest.raises(ValueError):
        LRU(3, maxweight=bad)
    with pytest.raises(ValueError):
        LRU(3, maxweight=bad, getsizeof=len)


def test_getsizeof_without_maxweight(LRU):
    with pytest.raises(TypeError):
        LRU(3, getsizeof=len)
    with pytest.raises(TypeError):
        LRU(3, [("a", "x")], getsizeof=len)


def test_maxweight_assignment_refused(LRU):
    rec = Recorder()
    lru = full_cache(LRU, rec, maxweight=10, getsizeof=weigh)
    before = snapshot(lru)
    with pytest.raises(AttributeError):
        lru.maxweight = 2
    with pytest.raises(AttributeError):
        lru.weight = 0
    assert_unchanged(lru, before, rec)


def test_unknown_keyword(LRU):
    with pytest.raises(TypeError):
        LRU(3, size=4)
    with pytest.raises(TypeError):
        LRU()


# ------------------------------------------------------------------ misses and empty

def test_missing_key_removals_leave_cache_unchanged(LRU):
    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    with pytest.raises(KeyError):
        del lru["missing"]
    with pytest.raises(KeyError):
        lru.pop("missing")
    assert lru.pop("missing", 5) == 5
    assert lru.peek("missing") is None
    assert "missing" not in lru
    assert_unchanged(lru, before, rec)


def test_popitem_empty(LRU):
    rec = Recorder()
    lru = LRU(3, on_evict=rec)
    lru.get("x")
    before = snapshot(lru)
    with pytest.raises(KeyError):
        lru.popitem()
    assert_unchanged(lru, before, rec)


def test_update_bad_arguments(LRU):
    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    with pytest.raises(TypeError):
        lru.update(5)  # not iterable
    with pytest.raises(TypeError):
        lru.update({}, {})  # two positional arguments
    assert_unchanged(lru, before, rec)


def test_update_pair_of_wrong_length(LRU):
    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    with pytest.raises((TypeError, ValueError)):
        lru.update([("k", 1, 2)])
    with pytest.raises((TypeError, ValueError)):
        lru.update([5])
    assert_unchanged(lru, before, rec)


def test_eq_comparison_with_bad_objects_is_safe(LRU):
    rec = Recorder()
    lru = full_cache(LRU, rec)
    before = snapshot(lru)
    assert (lru == 3) is False
    assert (lru == object()) is False
    assert (lru != [1]) is True
    with pytest.raises(TypeError):
        lru < lru
    with pytest.raises(TypeError):
        hash(lru)
    assert_unchanged(lru, before, rec)
