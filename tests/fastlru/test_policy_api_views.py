"""fastlru.Cache's repr, ``reversed`` and ``update`` from another cache (issue #22: the same
API as LRU), for every policy of both implementations."""

import pytest

import fastlru

def test_repr_exact(make, policy):
    c = make(3, [("a", 1), ("b", 2)])
    assert repr(c) == f"Cache(3, {c.items()[::-1]!r}, policy={policy!r})"
    assert repr(make(0)) == f"Cache(1, [], policy={policy!r})"
    assert repr(make(5, maxweight=7, ttl=2)) == \
        f"Cache(5, [], policy={policy!r}, maxweight=7, ttl=2.0)"


def test_repr_eval_round_trip(make, policy_module):
    c = make(10, [(1, "one"), ("two", 2.5), ((3, "x"), None), (None, [1, 2]), (b"b", frozenset())])
    c[1]
    again = eval(repr(c), {"Cache": policy_module.Cache})
    assert type(again) is type(c) and again.policy == c.policy and again.count == c.count
    assert again.items() == c.items()


def test_recursive_repr(make, policy):
    c = make(3)
    c["me"] = c
    assert repr(c) == f"Cache(3, [('me', ...)], policy={policy!r})"


def test_reversed(make):
    c = make(10)
    for i in range(8):
        c[i] = i
        c.get(i // 2)
    assert list(reversed(c)) == c.keys()[::-1]
    assert list(reversed(make(3))) == []


@pytest.mark.parametrize("source", ["cache", "lru"])
def test_update_from_another_cache_reads_nothing(make, policy_module, source):
    if source == "cache":
        other = make(10, [("a", 1), ("b", 2), ("c", 3)])
    else:
        other = fastlru.LRU(10, [("a", 1), ("b", 2), ("c", 3)])
    before = (other.items(), other.info())
    c = make(10)
    c.update(other)
    assert dict(c.items()) == {"a": 1, "b": 2, "c": 3}
    assert (other.items(), other.info()) == before  # no hit counted, no order changed


@pytest.mark.parametrize("change", ["store", "replace", "delete", "popitem", "clear", "shrink"])
@pytest.mark.parametrize("direction", [iter, reversed])
def test_iteration_raises_once_the_cache_changed(make, change, direction):
    c = make(10, [(i, i) for i in range(5)])
    it = direction(c)
    first = next(it)
    assert first in c
    c.get(first)  # a read changes no policy's membership: iteration goes on
    assert next(it) in c
    {"store": lambda: c.__setitem__("new", 1), "replace": lambda: c.__setitem__(first, 9),
     "delete": lambda: c.__delitem__(first), "popitem": c.popitem, "clear": c.clear,
     "shrink": lambda: setattr(c, "count", 2)}[change]()
    with pytest.raises(RuntimeError, match="Cache mutated during iteration"):
        next(it)
    with pytest.raises(RuntimeError):  # once failed it keeps failing
        next(it)


def test_iteration_lists_keys_as_keys_does_and_stays_exhausted(make):
    c = make(10)
    for i in range(8):
        c[i] = i
        c.get(i // 2)
    it = iter(c)
    assert iter(it) is it
    assert list(it) == c.keys()
    c["later"] = 1  # after exhaustion: it stays exhausted, no error
    assert list(it) == []
    assert list(reversed(c)) == c.keys()[::-1]


def test_iteration_raises_when_expiry_changes_the_cache(policy_module, policy):
    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    clock = Clock()
    c = policy_module.Cache(5, [("a", 1), ("b", 2)], policy=policy, ttl=1, timer=clock)
    it = iter(c)
    next(it)
    clock.now = 2
    len(c)  # reclaims both: the cache changed
    with pytest.raises(RuntimeError, match="Cache mutated during iteration"):
        next(it)
