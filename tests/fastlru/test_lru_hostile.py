"""What an adversarial user can build from Python: weights at the edge of ``Py_ssize_t``, a
cache used before ``__init__``, integers whose comparisons lie, deep chains of caches, a bare
iterator, a replaced ``builtins.len``. Each case holds both implementations to CPython's own
containers: a clear exception or a valid result, never a crash, a hang or a corrupted cache.
Cases that could crash or hang run in a subprocess (``run_isolated``)."""
import gc
import sys
import weakref

import pytest

from support.lru import run_isolated

MAX = sys.maxsize


class Weighted(list):
    """A value whose weight is its ``w``; weak-referenceable, to catch a leaked value."""

    def __init__(self, w):
        super().__init__()
        self.w = w


def weigh(value):
    return value.w


def snapshot(lru):
    return (lru.items(), lru.info(), lru.weight, lru.count, len(lru), lru.maxweight)


# ------------------------------------------------------------------ finding 1: weights near sys.maxsize

def test_replace_under_a_bound_of_sys_maxsize_keeps_the_key(LRU):
    evicted = []
    lru = LRU(10, maxweight=MAX, getsizeof=len, on_evict=lambda k, v: evicted.append(k))
    lru["a"] = "xx"
    new = Weighted(1)
    ref = weakref.ref(new)
    lru["a"] = new
    assert lru.items() == [("a", new)]
    assert lru.weight == 0  # len() of an empty list
    assert evicted == []
    lru._check()
    del new, lru
    gc.collect()
    assert ref() is None  # the stored value is not leaked


@pytest.mark.parametrize("maxweight", [MAX, MAX - 1, 10**30], ids=["maxsize", "maxsize-1", "clipped"])
def test_weights_summing_to_sys_maxsize(LRU, maxweight):
    bound = min(maxweight, MAX)
    half = bound // 2
    evicted = []
    lru = LRU(10, maxweight=maxweight, getsizeof=weigh, on_evict=lambda k, v: evicted.append(k))
    assert lru.maxweight == bound
    lru["a"] = Weighted(half + 1)
    lru["b"] = Weighted(bound - half - 1)
    assert lru.weight == bound
    assert lru.keys() == ["b", "a"]
    # Replacing "b" by the heaviest allowed value must evict "a" and keep "b".
    heavy = Weighted(bound)
    lru["b"] = heavy
    assert lru.items() == [("b", heavy)]
    assert lru.weight == bound
    assert evicted == ["a"]
    lru._check()
    # A lighter replacement of the only key keeps it.
    lru["b"] = Weighted(0)
    assert lru.keys() == ["b"] and lru.weight == 0
    # Inserting up to the bound again, then one more: the least recent goes.
    lru["c"] = Weighted(bound)
    assert lru.keys() == ["c", "b"] and lru.weight == bound
    lru["d"] = Weighted(1)  # "b" (weight 0) is the least recent: it goes first, then "c"
    assert lru.keys() == ["d"] and lru.weight == 1
    assert evicted == ["a", "b", "c"]
    assert lru.setdefault("e", Weighted(bound - 1)).w == bound - 1
    assert lru.keys() == ["e", "d"] and lru.weight == bound
    lru.count = 1
    assert lru.keys() == ["e"] and lru.weight == bound - 1
    assert evicted == ["a", "b", "c", "d"]
    lru._check()


def test_weight_above_sys_maxsize_is_refused(LRU):
    lru = LRU(3, [("a", Weighted(1))], maxweight=MAX, getsizeof=weigh)
    before = snapshot(lru)
    for w in (MAX + 1, 2**64, 10**30):
        with pytest.raises(ValueError):
            lru["b"] = Weighted(w)
        with pytest.raises(ValueError):
            lru["a"] = Weighted(w)
    assert snapshot(lru) == before
    lru._check()


# ------------------------------------------------------------------ finding 2: before __init__

def test_a_cache_used_before_init_is_a_valid_lru_of_one(lru_module):
    out = run_isolated(lru_module, """
        c = LRU.__new__(LRU)
        assert len(c) == 0 and c.count == 1 and c.maxweight is None, (len(c), c.count)
        for i in range(50):
            c[i] = i
        assert c.items() == [(49, 49)], c.items()
        c.count = 200
        for i in range(200):
            c[i] = str(i)
        assert len(c) == 200
        c._check()
        # holding entries, __init__ cannot give them weights: refused, nothing changes
        before = c.items()
        try:
            c.__init__(300, maxweight=10**6, getsizeof=len)
        except RuntimeError as exc:
            print("refused:", exc)
        assert c.items() == before and c.maxweight is None
        # emptied (the arena stays allocated), __init__ may still run once, weights and all
        for i in range(200):
            del c[i]
        c.__init__(300, maxweight=10**6, getsizeof=len)
        assert c.count == 300 and c.maxweight == 10**6
        for i in range(1000):
            c[i] = "x" * (i % 7)
        assert len(c) == 300
        c._check()
        assert c.weight == sum(len(v) for v in c.values())
        try:
            c.__init__(5)
        except RuntimeError as exc:
            print("again:", exc)
        print("ok", len(c))
    """)
    assert "refused: " in out
    assert "again: LRU.__init__ called twice" in out
    assert out.endswith("ok 300\n")


def test_pre_init_cache_in_the_gc(lru_module):
    LRU = lru_module.LRU
    c = LRU.__new__(LRU)
    c["self"] = c  # a cycle through a cache that never ran __init__
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------ finding 3: count and maxweight

LIARS = """
        class Zero(int):
            # an int whose comparisons all say False: a bound check through them lets anything pass
            __lt__ = __le__ = __gt__ = __ge__ = __eq__ = lambda self, other: False
            __ne__ = lambda self, other: True
            __hash__ = int.__hash__
"""  # indented as the scripts it prefixes (run_isolated dedents them together)


def test_count_whose_comparisons_lie(lru_module):
    out = run_isolated(lru_module, LIARS + """
        c = LRU(Zero(0))
        assert type(c.count) is int and c.count == 1, c.count
        c["a"] = 1
        c["b"] = 2
        assert c.items() == [("b", 2)], c.items()
        c.count = Zero(-3)
        assert type(c.count) is int and c.count == 1
        c["x"] = 1
        c.count = Zero(5)
        for i in range(10):
            c[i] = i
        assert c.keys() == [9, 8, 7, 6, 5], c.keys()
        c.count = Zero(10**30)
        import sys
        assert c.count == sys.maxsize
        c._check()
        print("ok")
    """)
    assert out == "ok\n"


def test_maxweight_whose_comparisons_lie(lru_module):
    out = run_isolated(lru_module, LIARS + """
        import sys
        try:
            LRU(3, maxweight=Zero(-5))
        except ValueError as exc:
            print("negative refused")
        c = LRU(3, maxweight=Zero(10**30), getsizeof=len)
        assert type(c.maxweight) is int and c.maxweight == sys.maxsize
        c = LRU(3, maxweight=Zero(4), getsizeof=len)
        assert type(c.maxweight) is int and c.maxweight == 4
        c["a"] = "xx"
        c["b"] = "yy"
        c["c"] = "z"
        assert c.keys() == ["c", "b"], c.keys()
        c._check()
        print("ok")
    """)
    assert out == "negative refused\nok\n"


def test_getsizeof_result_whose_comparisons_lie(lru_module):
    out = run_isolated(lru_module, LIARS + """
        c = LRU(3, [("a", "x")], maxweight=10, getsizeof=lambda v: len(v) if isinstance(v, str) else v)
        for bad, exc in ((Zero(-5), ValueError), (Zero(11), ValueError), (Zero(10**30), ValueError)):
            try:
                c["b"] = bad
            except exc:
                pass
            else:
                raise AssertionError(f"stored {int(bad)}")
            assert c.items() == [("a", "x")] and c.weight == 1, (c.items(), c.weight)
        c["b"] = Zero(7)
        assert c.weight == 8
        c._check()
        print("ok")
    """)
    assert out == "ok\n"


class Index:
    """Not an int, but an integer by ``__index__``."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


class IndexRaises:
    def __index__(self):
        raise ZeroDivisionError("no index")


def test_count_and_maxweight_by_index(LRU):
    lru = LRU(Index(2), maxweight=Index(7), getsizeof=len)
    assert (lru.count, lru.maxweight) == (2, 7)
    assert type(lru.count) is int and type(lru.maxweight) is int
    lru.count = Index(3)
    assert lru.count == 3
    assert LRU(True).count == 1 and LRU(False).count == 1  # bools are ints: 1, and 0 made 1
    lru.count = True
    assert type(lru.count) is int and lru.count == 1


@pytest.mark.parametrize(
    "bad, exc",
    [(IndexRaises(), ZeroDivisionError), (Index("3"), TypeError), (Index(2.0), TypeError)],
    ids=["raises", "returns-str", "returns-float"],
)
def test_index_that_misbehaves(LRU, bad, exc):
    with pytest.raises(exc):
        LRU(bad)
    with pytest.raises(exc):
        LRU(3, maxweight=bad)
    lru = LRU(3, [(1, 1), (2, 2), (3, 3)])
    before = snapshot(lru)
    with pytest.raises(exc):
        lru.count = bad
    assert snapshot(lru) == before
    lru._check()


# ------------------------------------------------------------------ finding 4: deep chains

@pytest.mark.timeout(300)
@pytest.mark.parametrize("cycle", [False, True], ids=["chain", "cycle"])
def test_deleting_a_deep_chain_of_caches(lru_module, cycle):
    out = run_isolated(lru_module, f"""
        import gc
        gc.disable()
        first = head = LRU(1)
        for _ in range(200_000):
            nxt = LRU(1)
            nxt["next"] = head
            head = nxt
        if {cycle}:
            first["next"] = head  # the last holds the first: only the GC frees them
        del nxt, first
        del head
        gc.enable()
        gc.collect()
        print("ok")
    """, timeout=240)
    assert out == "ok\n"


# ------------------------------------------------------------------ finding 5: the iterator type

def test_iterator_type_refuses_what_is_not_an_lru(lru_module):
    out = run_isolated(lru_module, """
        it_type = type(iter(LRU(1)))
        for bad in (None, {}, [1], object()):
            try:
                it = it_type(bad, True)
            except TypeError:
                continue
            try:
                next(it)  # a crash here is the finding
            except (StopIteration, TypeError, RuntimeError):
                pass
            raise AssertionError(f"iterator built over {bad!r}")
        print("ok")
    """)
    assert out == "ok\n"


# ------------------------------------------------------------------ finding 8: a replaced len()

def test_builtin_len_cached_in_the_same_lru(lru_module):
    # CPython's test_lru_reentrancy_with_len: the cache must not call an overridable builtin
    # (here len, replaced by a function that uses the very same cache) while holding its lock.
    out = run_isolated(lru_module, """
        import builtins
        real_len = builtins.len
        lru = LRU(4)

        def cached_len(obj):
            try:
                key = ("len", obj)
                hash(key)
            except TypeError:
                lru.peek(("len", id(obj)))  # takes the cache's lock if it has one
                return real_len(obj)
            value = lru.get(key)
            if value is None:
                value = lru[key] = real_len(obj)
            return value

        builtins.len = cached_len
        try:
            for i in [0, 0, 1, 2, 3, 3, 4, 5, 6, 1, 7, 2, 1]:
                assert len("abcdefghijklmn"[:i]) == i
                lru[i] = i
                lru.setdefault(-i, i)
            lru.count = 2
            lru.update([(20, 20), (21, 21)])
            lru.copy()
            lru.clear()
            for i in range(40):
                lru[i] = i
            list(lru)
            lru._check()
        finally:
            builtins.len = real_len
        print("ok", lru.keys())
    """, timeout=30)
    assert out == "ok [39, 38]\n"
