"""Pure-Python ``Cache``: a bounded mapping whose eviction policy is chosen by name.

>>> cache = Cache(2, policy="sieve")
>>> cache["a"] = 1; cache["b"] = 2
>>> cache["a"]
1
>>> cache["c"] = 3  # "b" was never read again: SIEVE evicts it, "a" was visited
>>> sorted(cache)
['a', 'c']

Policies (``POLICIES``), each as its authors describe it:

- ``"lru"``: least recently used, one list, a hit moves the entry to the front.
- ``"sieve"``: Zhang, Yang, Yue, Vigfusson, Rashmi, "SIEVE is Simpler than LRU: an Efficient
  Turn-Key Eviction Algorithm for Web Caches", NSDI'24 (https://sievecache.com). One FIFO list,
  a visited bit per entry, a hand moving from the oldest entry towards the newest; a hit only
  sets the bit (no list update: nothing but one flag written on a read).
- ``"s3fifo"``: Yang, Zhang, Qiu, Yue, Vinayak, "FIFO queues are all you need for cache
  eviction", SOSP'23, and libCacheSim's ``S3FIFOv0.c`` / cachemon's reference: a small FIFO
  (10% of the entries), a main FIFO (90%, a 2-bit CLOCK), a ghost FIFO of hashes as long as the
  main one. New keys go to the small FIFO, or to the main one if the ghost remembers them.
- ``"wtinylfu"``: Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission
  Policy", ACM ToS 2017, as Caffeine builds it (``BoundedLocalCache``, ``FrequencySketch``): a
  window LRU (1% of the entries), a segmented LRU main (probation 20%, protected 80%), a 4-bit
  count-min sketch of 4 rows with a doorkeeper bit set, halved every ``10 * count`` additions;
  a candidate leaving the window replaces the probation victim only if the sketch estimates it
  more frequent; the window is resized by a hill climber after Caffeine's (``BoundedLocalCache.
  climb``, simulator ``climbing/hill/SimpleClimber``: decay 0.98, restart on a 5-point change of
  the hit ratio), changed so that it can follow workloads where only recency counts: the window
  ranges over 1..count-1 entries (the main keeps 80% of the rest protected); the climber waits
  for the cache to fill once (its first sample then only sets the reference) and decides every
  ``max(2 * count, 4096)`` requests, in steps of 12.5% of ``count``; it turns back only on a
  drop of the hit ratio above twice the noise of two samples (``2 * sqrt(2 p (1 - p) / n)``),
  so at a bound or on a plateau it stays rather than wander; after a clear gain (above the
  noise) of a move that was not at a bound, it goes on twice as far (at most half the cache).
  A shadow checks it, a miniature simulation after Waldspurger, Saemundsson, Ahmad, Park,
  "Cache Modeling and Optimization using Miniature Simulations", USENIX ATC'17: an LRU of the
  hashes of 1 key in 2**k (by hash; 256 to 511 hashes, all of them below 512 entries), as long
  as ``count`` scaled, replays the same reads. Over each sample it counts the sampled reads
  the shadow hits and the cache misses (``a``) and the reverse (``b``): paired, a scan or a
  phase of the workload moves both. If ``a - b > 2 sqrt(a + b)`` (LRU, a window as large as the
  cache, clearly ahead: only recency pays, the "twice" and "shifting" workloads) the window
  goes to ``count - 1`` at once; if ``b - a > 2 sqrt(a + b)`` (frequency clearly pays: Zipf,
  scans, loops) the window may shrink but not grow.
- ``"tinylfu"``: TinyLFU as moka builds it (moka-rs ``base_cache``'s ``admit``; Einziger,
  Friedman, Manes, ACM ToS 2017): an LRU main guarded by W-TinyLFU's sketch and admission, no
  adaptive window. Here the newest entry is held in a window of one (a store is visible at
  once, as with every policy) and replaces the main's LRU victim, when the next new key comes,
  only if the sketch estimates it more frequent. The best here on loops slightly larger than
  the cache; as bad as any frequency policy on keys read twice.

Weights are ``LRU``'s (``maxweight``, ``getsizeof``, ``weight``): a store evicts the policy's
victims (``popitem``'s order) until the new entry's weight fits, then files it as the policy does;
a replacement that must evict to fit is taken out of the policy first (so it is never its own
victim) and filed again as a new entry that was read once.

A ``ttl`` (and ``timer``) is ``LRU``'s: an entry expires ``ttl`` seconds after it was stored;
an expired entry is absent to ``peek``/``in``, a miss to ``get`` (which reclaims it), and is
reclaimed, oldest stored first and reported to ``on_evict`` as an eviction, before a store,
``popitem``, ``len``, ``info``, ``weight`` and the views; the policy only ever chooses among
live entries then. Expiry times live beside the entries only with a ttl.

``copy()``, ``copy.copy`` and pickling rebuild a cache of the same type, count, policy and
options holding the same entries, stored in the reverse of ``items()``; the policy's history (a
ghost, a sketch, visited bits) is not carried over, and with a ttl the entries start afresh.

``count`` is settable, as ``LRU``'s: the policy takes its shares of the new count (W-TinyLFU
restarts from its initial split, as Caffeine's ``setMaximumSize``), then evicts its victims down
to it; a big shrink compacts the arena, as ``LRU``'s.

Where ``Cache`` still differs from ``LRU``: ``keys()`` lists entries in the policy's own order
(for ``"lru"``: most recent first, as ``LRU``); an iterator lists the keys when it starts and
raises RuntimeError once the cache changed, as ``LRU``'s, but a read (which changes no
policy's membership) does not count as a change; ``==`` ignores order.

The safety rules are ``LRU``'s: a key's ``__hash__`` runs once, before any state is touched; an
open-addressing table of entry numbers (the compiled engine's, slot for slot, so that both
compare a key with the same entries in the same order) finds the entry; ``self._lock`` is
released while a key's ``__eq__`` runs, and the lookup restarts if the cache changed meanwhile;
entries are allocated before the lock (allocating may run the GC); evicted keys and values are
released, and ``on_evict`` called, only after the lock is released.
"""
from __future__ import annotations

import reprlib
import threading
import time
import collections
import collections.abc
from collections.abc import MutableMapping
from types import GenericAlias
from typing import (Any, Callable, Dict, Hashable, Iterable, Iterator, List, Optional, SupportsIndex,
                    Tuple, TypeVar)

from array import array
from math import sqrt

from ._common import (CacheType, DEFAULT_POLICY, LRUType, MAX_RESTARTS, POLICIES, cache_kwargs,
                      cache_repr, check_count, check_policy, check_timer,
                      check_ttl, copy_cache, iter_pairs, rebuild_cache, reduce_cache)
from ._engine_py import (_EMPTY, _EMPTY_ROW, _FIB, _M64, _MIN_TABLE, _MISSING, _Engine,
                         _check_callbacks, _is_plain)

__all__ = ["Cache", "POLICIES"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_T = TypeVar("_T")
# A huge count must not allocate a huge sketch or ghost: the sketch at most 2**26 counters (32 MiB
# in the compiled engine), the ghost at most 4M slots (then it forgets early).
_MIN_SKETCH_WIDTH = 32  # one block of 128 counters
_MAX_SKETCH_WIDTH = 1 << 24
_MAX_GHOST_BUCKETS = 1 << 20

# queue an entry is in
_FREE, _MAIN, _SMALL, _WINDOW, _PROBATION, _PROTECTED = range(6)


class _Entry:
    """One cached key, or the sentinel of a circular list (``next`` is the newest)."""

    __slots__ = ("key", "value", "hash", "plain", "prev", "next", "number", "queue", "bits")
    key: Any
    value: Any
    hash: int
    plain: bool
    prev: _Entry
    next: _Entry
    number: int
    queue: int
    bits: int

    def __init__(self) -> None:
        self.prev = self.next = self
        self.number = -1  # its place in the arena
        self.queue = _FREE
        self.bits = 0  # SIEVE: visited; S3-FIFO: a frequency 0..3


class _List:
    """A circular doubly-linked list with a sentinel: ``first()`` the newest, ``last()`` the
    oldest."""

    __slots__ = ("root", "size")

    def __init__(self) -> None:
        self.root = _Entry()
        self.size = 0

    def push(self, e: _Entry) -> None:
        root = self.root
        first = root.next
        e.prev = root
        e.next = first
        first.prev = e
        root.next = e
        self.size += 1

    def remove(self, e: _Entry) -> None:
        e.prev.next = e.next
        e.next.prev = e.prev
        self.size -= 1

    def last(self) -> Optional[_Entry]:
        e = self.root.prev
        return None if e is self.root else e

    def __iter__(self) -> Iterator[_Entry]:
        e = self.root.next
        while e is not self.root:
            yield e
            e = e.next


class _Policy:
    """What a policy does, always under the cache's lock and without user code.

    ``insert`` files a new entry and returns the entries it evicts to stay within ``count``
    (possibly the new one: an admission policy may refuse it); ``hit`` records a read;
    ``remove`` takes an entry out (pop, del); ``victim`` picks and removes one (popitem);
    ``resize`` takes a new ``count`` (the cache then evicts ``victim``s down to it)."""

    name = ""

    def __init__(self, count: int) -> None:
        self.count = count

    def resize(self, count: int) -> None:
        self.count = count

    def hit(self, e: _Entry) -> None:
        raise NotImplementedError

    def insert(self, e: _Entry, size: int) -> List[_Entry]:
        raise NotImplementedError

    def remove(self, e: _Entry) -> None:
        raise NotImplementedError

    def victim(self) -> _Entry:
        raise NotImplementedError

    def order(self) -> Iterator[_Entry]:
        raise NotImplementedError

    def _make_room(self, size: int) -> List[_Entry]:
        evicted = []
        while size >= self.count:
            evicted.append(self.victim())
            size -= 1
        return evicted


class _LRUPolicy(_Policy):
    name = "lru"

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.list = _List()

    def hit(self, e: _Entry) -> None:
        self.list.remove(e)
        self.list.push(e)

    def insert(self, e: _Entry, size: int) -> List[_Entry]:
        evicted = self._make_room(size)
        e.queue = _MAIN
        self.list.push(e)
        return evicted

    def remove(self, e: _Entry) -> None:
        self.list.remove(e)

    def victim(self) -> _Entry:
        e = self.list.last()
        assert e is not None
        self.list.remove(e)
        return e

    def order(self) -> Iterator[_Entry]:
        return iter(self.list)


class _SievePolicy(_Policy):
    """SIEVE (NSDI'24, Algorithm 1): the hand walks from the oldest towards the newest,
    clearing visited bits, and evicts the first unvisited entry; new entries go to the head."""

    name = "sieve"

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.list = _List()
        self.hand: Optional[_Entry] = None

    def hit(self, e: _Entry) -> None:
        if not e.bits:
            e.bits = 1

    def insert(self, e: _Entry, size: int) -> List[_Entry]:
        evicted = self._make_room(size)
        e.queue = _MAIN
        e.bits = 0
        self.list.push(e)
        return evicted

    def _toward_newer(self, e: _Entry) -> Optional[_Entry]:
        p = e.prev
        return None if p is self.list.root else p

    def remove(self, e: _Entry) -> None:
        if self.hand is e:
            self.hand = self._toward_newer(e)
        self.list.remove(e)

    def victim(self) -> _Entry:
        o = self.hand if self.hand is not None else self.list.last()
        assert o is not None
        while o.bits:
            o.bits = 0
            nxt = self._toward_newer(o)
            o = nxt if nxt is not None else self.list.last()
            assert o is not None
        self.hand = self._toward_newer(o)
        self.list.remove(o)
        return o

    def order(self) -> Iterator[_Entry]:
        return iter(self.list)


def _spread(h: int) -> int:
    """A key's hash mixed (Fibonacci hashing, high bits folded in): the sketch's and the
    ghost's slots are taken from it."""
    h = (h & _M64) * 0x9E3779B97F4A7C15 & _M64
    return h ^ (h >> 32)


class _Ghost:
    """S3-FIFO's ghost FIFO as its authors suggest building it (paper, section 4.3): no queue,
    a table of buckets of 4 slots holding a hash and its insertion number; a hash is in the
    ghost while fewer than ``cap`` hashes were added after it. A full bucket forgets its
    oldest slot (rarely: the table has twice ``cap`` slots)."""

    __slots__ = ("hashes", "times", "mask", "cap", "now")
    WAYS = 4

    def __init__(self, cap: int) -> None:
        buckets = 1
        while buckets * self.WAYS < 2 * cap and buckets < _MAX_GHOST_BUCKETS:
            buckets *= 2
        self.hashes = [0] * (buckets * self.WAYS)
        self.times = [-1] * (buckets * self.WAYS)  # -1: an empty slot
        self.mask = buckets - 1
        self.cap = cap
        self.now = 0

    def _bucket(self, h: int) -> int:
        return ((_spread(h) >> 17) & self.mask) * self.WAYS

    def take(self, h: int) -> bool:
        """True if ``h`` is in the ghost, which then forgets it."""
        b = self._bucket(h)
        for i in range(b, b + self.WAYS):
            t = self.times[i]
            if t >= 0 and self.hashes[i] == h and self.now - t < self.cap:
                self.times[i] = -1
                return True
        return False

    def add(self, h: int) -> None:
        self.now += 1
        b = self._bucket(h)
        best = b
        for i in range(b, b + self.WAYS):
            t = self.times[i]
            if t >= 0 and self.hashes[i] == h:
                best = i
                break
            if t < 0 or self.now - t >= self.cap:
                best = i  # empty or forgotten: free
                break
            if t < self.times[best]:
                best = i
        self.hashes[best] = h
        self.times[best] = self.now


class _S3FIFOPolicy(_Policy):
    """S3-FIFO (SOSP'23, Algorithm 1): evict from the small FIFO while it holds 10% or more,
    moving its accessed entries to the main FIFO and remembering the others' hashes in the
    ghost; the main FIFO reinserts an accessed entry with its frequency decreased."""

    name = "s3fifo"

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.small = _List()
        self.main = _List()
        self.small_cap = max(1, count // 10)
        self.ghost = _Ghost(max(1, count - self.small_cap))

    def resize(self, count: int) -> None:
        """The FIFOs' shares of the new count; the ghost keeps its table (it forgets early if
        the count grew past it) and remembers as many hashes as the main FIFO holds."""
        self.count = count
        self.small_cap = max(1, count // 10)
        self.ghost.cap = max(1, count - self.small_cap)

    def hit(self, e: _Entry) -> None:
        if e.bits < 3:
            e.bits += 1

    def insert(self, e: _Entry, size: int) -> List[_Entry]:
        evicted = self._make_room(size)
        e.bits = 0
        if self.ghost.take(e.hash):
            e.queue = _MAIN
            self.main.push(e)
        else:
            e.queue = _SMALL
            self.small.push(e)
        return evicted

    def remove(self, e: _Entry) -> None:
        (self.small if e.queue == _SMALL else self.main).remove(e)

    def victim(self) -> _Entry:
        small, main = self.small, self.main
        if small.size >= self.small_cap or main.size == 0:
            while small.size:
                t = small.last()
                assert t is not None
                small.remove(t)
                if t.bits >= 1:  # accessed while in the small FIFO: to the main one
                    t.bits = 0
                    t.queue = _MAIN
                    main.push(t)
                else:
                    self.ghost.add(t.hash)
                    return t
        while True:
            t = main.last()
            assert t is not None
            main.remove(t)
            if t.bits:
                t.bits -= 1
                main.push(t)
            else:
                return t

    def order(self) -> Iterator[_Entry]:
        yield from self.small
        yield from self.main


class _Sketch:
    """Caffeine's ``FrequencySketch`` (its layout, as ``_sketch.h``): ``4 * width`` 4-bit counters
    (capped at 15), 16 to a 64-bit word, 8 words to a 64-byte block; a key's hash picks a block
    and one counter in each pair of its words, so the compiled engine touches one cache line. A
    doorkeeper (TinyLFU paper, section 3.4.2) absorbs each key's first occurrence; a reset
    halves every counter after ``10 * count`` additions.

    Here counter ``n`` (0..15, bits ``4n``..``4n+3``) of word ``w`` is ``table[16 * w + n]``."""

    __slots__ = ("table", "block_mask", "door", "door_mask", "additions", "sample")

    HALF = bytes(c >> 1 for c in range(256))  # halves a counter (the compiled: a word's 16)

    def __init__(self, count: int) -> None:
        width = _MIN_SKETCH_WIDTH
        while width < count and width < _MAX_SKETCH_WIDTH:
            width *= 2
        self.table = bytearray(4 * width)
        self.block_mask = width // 32 - 1
        self.door = bytearray(width)  # one byte per bit: the compiled engine packs them
        self.door_mask = width - 1
        self.additions = 0
        self.sample = 10 * max(count, 1)

    def _counters(self, s: int) -> List[int]:
        """The key's 4 counters, for its spread hash ``s`` (as fastlru_sketch_locate)."""
        block = (s & self.block_mask) << 3
        c = s >> 32
        at = []
        for i in range(4):
            b = c >> (i << 3)
            at.append(((block + (i << 1) + (b & 1)) << 4) + ((b >> 1) & 15))
        return at

    def frequency(self, h: int) -> int:
        s = _spread(h)
        table = self.table
        return min(table[i] for i in self._counters(s)) + self.door[(s >> 7) & self.door_mask]

    def increment(self, h: int) -> None:
        s = _spread(h)
        d = (s >> 7) & self.door_mask
        if not self.door[d]:
            self.door[d] = 1
        else:
            table = self.table
            added = False
            for i in self._counters(s):
                if table[i] < 15:
                    table[i] += 1
                    added = True
            if not added:
                return
        self.additions += 1
        if self.additions >= self.sample:
            self.additions //= 2
            self.table = self.table.translate(self.HALF)
            self.door[:] = bytes(len(self.door))


class _SketchPolicy(_Policy):
    """What W-TinyLFU and TinyLFU share: the sketch and the admission rule (Caffeine's
    ``BoundedLocalCache.admit``: the candidate gets in only if estimated more frequent than
    the victim; a warm candidate that is not, with probability 1/128 against hash flooding)."""

    HASHDOS = 6  # ADMIT_HASHDOS_THRESHOLD

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.sketch = _Sketch(count)
        self.random = 0x2545F4914F6CDD1D  # xorshift state: seeded, runs are reproducible

    def _admit(self, candidate: _Entry, victim: _Entry) -> bool:
        fc = self.sketch.frequency(candidate.hash)
        fv = self.sketch.frequency(victim.hash)
        if fc > fv:
            return True
        if fc >= self.HASHDOS:  # a flood of colliding keys must not pin the victim forever
            x = self.random
            x ^= (x << 13) & _M64
            x ^= x >> 7
            x ^= (x << 17) & _M64
            self.random = x
            return (x & 127) == 0
        return False


class _WTinyLFUPolicy(_SketchPolicy):
    """W-TinyLFU as Caffeine: window LRU -> (admission by the sketch) -> segmented LRU."""

    name = "wtinylfu"
    STEP = 0.125  # of count (Caffeine: 0.0625, every 10 * count requests)
    DECAY = 0.98  # HILL_CLIMBER_STEP_DECAY_RATE
    RESTART = 0.05  # HILL_CLIMBER_RESTART_THRESHOLD
    SAMPLE = 2  # the climber decides every max(SAMPLE * count, MIN_SAMPLE) requests
    MIN_SAMPLE = 4096
    SHADOW = True  # a sampled LRU of hashes checks the climber (Waldspurger et al., ATC'17)
    SHADOW_MIN = 256  # the shadow samples 1 key in 2**k, k the largest with count >> k >= this
    FIRST_GAP = 0.03  # of the sampled reads: what the shadow must win by on the first sample

    def __init__(self, count: int) -> None:
        super().__init__(count)
        # The shadow: an LRU of the hashes of a sample of the keys (1 in rate_mask + 1, by hash),
        # as long as count scaled by that rate: a miniature of LRU (a window of the whole
        # cache) replayed on the same requests. shadow_lru counts the sampled reads it hits and
        # the cache misses, shadow_ours the reverse.
        rate = 1
        while count // (2 * rate) >= self.SHADOW_MIN:
            rate *= 2
        self.rate_mask = rate - 1
        self.shadow_alloc = max(1, count // rate)  # the compiled engine's arrays: fixed
        self.shadow_cap = self.shadow_alloc
        self.shadow: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.shadow_lru = self.shadow_ours = 0
        self.window = _List()
        self.probation = _List()
        self.protected = _List()
        self.window_cap = max(1, count // 100)
        self.protected_cap = int((count - self.window_cap) * 0.8)
        self.sample_hits = self.sample_misses = 0
        self.climb_sample = max(self.SAMPLE * count, self.MIN_SAMPLE)
        self.full = False  # the climber waits for the cache to fill once
        self.previous_rate = -1.0  # none yet: the first sample only sets it
        self.step = -self.STEP * count

    def resize(self, count: int) -> None:
        """As Caffeine's ``setMaximumSize``: the window and protected shares start again from
        the initial split of the new count and the hill climber restarts; the sketch keeps its
        width (its counters survive), its reset period follows the count."""
        self.count = count
        self.window_cap = max(1, count // 100)
        self.protected_cap = int((count - self.window_cap) * 0.8)
        self.sketch.sample = 10 * max(count, 1)
        self.sample_hits = self.sample_misses = 0
        self.climb_sample = max(self.SAMPLE * count, self.MIN_SAMPLE)
        self.full = False  # as at __init__: the climber waits for the cache to fill again
        self.previous_rate = -1.0  # and its first sample only sets the reference
        self.step = -self.STEP * count
        # the shadow starts empty, at the new count's rate and length; if that is longer than
        # at creation (the compiled engine does not allocate here), at a lower rate
        self.shadow.clear()
        rate = 1
        while count // (2 * rate) >= self.SHADOW_MIN:
            rate *= 2
        while count // rate > self.shadow_alloc:
            rate *= 2
        self.rate_mask = rate - 1
        self.shadow_cap = max(1, count // rate)
        self.shadow_lru = self.shadow_ours = 0

    # -- statistics that drive the hill climber -----------------------------------------
    def access(self, h: int, hit: bool) -> None:
        if self.SHADOW and ((_spread(h) >> 48) & self.rate_mask) == 0:
            shadow = self.shadow
            if h in shadow:
                shadow.move_to_end(h)
                if self.full and not hit:
                    self.shadow_lru += 1
            else:
                shadow[h] = None
                if len(shadow) > self.shadow_cap:
                    shadow.popitem(last=False)
                if self.full and hit:
                    self.shadow_ours += 1
        if hit:  # a miss is counted when its key is inserted (Caffeine: on put)
            self.sketch.increment(h)
            if not self.full:
                return
            self.sample_hits += 1
        elif not self.full:
            return
        else:
            self.sample_misses += 1
        if self.sample_hits + self.sample_misses >= self.climb_sample:
            self._climb()

    def _climb(self) -> None:
        n = self.sample_hits + self.sample_misses
        rate = self.sample_hits / n
        self.sample_hits = self.sample_misses = 0
        # The shadow against the cache, on the same sampled reads (paired: a scan or a phase
        # of the workload moves both): LRU clearly ahead means only recency pays, so the
        # window goes to the whole cache at once; clearly behind, the window may not grow.
        gap = self.shadow_lru - self.shadow_ours
        shadow_noise = 2.0 * sqrt(self.shadow_lru + self.shadow_ours)
        self.shadow_lru = self.shadow_ours = 0
        top = max(self.count - 1, 1)
        # the first sample after the cache filled also needs a gap of 3% of the sampled reads:
        # while the sketch is cold LRU is a little ahead everywhere (Zipf 0.6 went to LRU)
        if (gap > shadow_noise and self.window_cap < top
                and (self.previous_rate >= 0.0
                     or gap > self.FIRST_GAP * n / (self.rate_mask + 1))):
            self.window_cap = top
            self.protected_cap = int((self.count - top) * 0.8)
            self.step = self.STEP * self.count  # stay there unless the hit ratio drops
            self.previous_rate = -1.0  # the next sample sets the reference
            return
        if self.previous_rate < 0.0:
            self.previous_rate = rate
            return
        change = rate - self.previous_rate
        # turn back only on a drop above the noise (two standard deviations of the
        # difference of two samples' hit ratios): at a bound or on a plateau, stay
        noise = 2.0 * sqrt(2.0 * rate * (1.0 - rate) / n)
        amount = self.step if change >= -noise else -self.step
        # the window ranges over 1..count-1 entries; the main's protected share stays 80%
        window = min(max(self.window_cap + int(amount), 1), max(self.count - 1, 1))
        if abs(change) >= self.RESTART:
            self.step = self.STEP * self.count * (1 if amount >= 0 else -1)
        elif change > noise and window != self.window_cap:
            # a clear gain and room to go on: the same way, twice as far (at most half)
            self.step = 2.0 * amount
            if abs(self.step) > 0.5 * self.count:
                self.step = 0.5 * self.count * (1 if amount >= 0 else -1)
        else:
            self.step = self.DECAY * amount
        if -gap > shadow_noise and window > self.window_cap:
            window = self.window_cap  # frequency pays: no bigger window (scans, Zipf)
            self.step = -abs(self.step)
        self.previous_rate = rate
        if window != self.window_cap:
            self.window_cap = window
            self.protected_cap = int((self.count - window) * 0.8)

    def hit(self, e: _Entry) -> None:
        q = e.queue
        if q == _WINDOW:
            self.window.remove(e)
            self.window.push(e)
        elif q == _PROTECTED:
            self.protected.remove(e)
            self.protected.push(e)
        else:
            self.probation.remove(e)
            e.queue = _PROTECTED
            self.protected.push(e)
            while self.protected.size > self.protected_cap:
                d = self.protected.last()
                assert d is not None
                self.protected.remove(d)
                d.queue = _PROBATION
                self.probation.push(d)

    def insert(self, e: _Entry, size: int) -> List[_Entry]:
        self.sketch.increment(e.hash)
        e.queue = _WINDOW
        self.window.push(e)
        size += 1
        if size >= self.count:
            self.full = True
        evicted = []
        while self.window.size > self.window_cap:
            c = self.window.last()
            assert c is not None
            self.window.remove(c)
            c.queue = _PROBATION
            if size > self.count:
                v = self.probation.last() or self.protected.last()
                if v is None:
                    evicted.append(c)
                    size -= 1
                    continue
                if self._admit(c, v):
                    (self.probation if v.queue == _PROBATION else self.protected).remove(v)
                    evicted.append(v)
                else:
                    evicted.append(c)
                    size -= 1
                    continue
                size -= 1
            self.probation.push(c)
        while size > self.count:  # the window may hold more than its share: from probation
            v = self.probation.last() or self.protected.last() or self.window.last()
            assert v is not None
            self.remove(v)
            evicted.append(v)
            size -= 1
        return evicted

    def remove(self, e: _Entry) -> None:
        q = e.queue
        (self.window if q == _WINDOW else self.protected if q == _PROTECTED
         else self.probation).remove(e)

    def victim(self) -> _Entry:
        v = self.probation.last() or self.protected.last() or self.window.last()
        assert v is not None
        self.remove(v)
        return v

    def order(self) -> Iterator[_Entry]:
        yield from self.window
        yield from self.probation
        yield from self.protected


class _TinyLFUPolicy(_WTinyLFUPolicy):
    """TinyLFU as moka builds it (moka-rs ``base_cache``: an LRU main guarded by TinyLFU
    admission, no adaptive window), in W-TinyLFU's frame: a window of one entry (the newest,
    so that a store is visible at once), an LRU main (no protected segment), no climber."""

    name = "tinylfu"
    SHADOW = False

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.window_cap = 1
        self.protected_cap = 0

    def resize(self, count: int) -> None:
        """The sketch keeps its width (its counters survive), its reset period follows."""
        self.count = count
        self.sketch.sample = 10 * max(count, 1)

    def access(self, h: int, hit: bool) -> None:
        if hit:  # a miss is counted when its key is inserted
            self.sketch.increment(h)


_POLICY_CLASSES: Dict[str, Callable[[int], _Policy]] = {
    "lru": _LRUPolicy,
    "sieve": _SievePolicy,
    "s3fifo": _S3FIFOPolicy,
    "wtinylfu": _WTinyLFUPolicy,
    "tinylfu": _TinyLFUPolicy,
}
assert POLICIES == tuple(_POLICY_CLASSES)


class Cache(_Engine[_K, _V]):
    """A bounded mapping whose eviction policy is chosen by name (see the module docstring).

    >>> cache = Cache(1000, policy="wtinylfu")
    >>> cache["k"] = "v"; cache.get("k")
    'v'
    """

    __slots__ = ("_arena", "_free", "_table", "_mask", "_shift", "_policy", "_count", "_size", "_version", "_hits", "_misses",
                 "_evictions", "_on_evict", "_lock", "_access", "_ready", "_weights", "_weight",
                 "_maxweight", "_getsizeof", "_ttl", "_timer", "_expires", "_sprev", "_snext",
                 "_oldest", "__weakref__")
    __class_getitem__: Any = classmethod(GenericAlias)
    __hash__ = None  # type: ignore[assignment]  # mutable, as dict
    _arena: List[_Entry]
    _free: List[int]
    _table: "array[int]"
    _mask: int
    _shift: int
    _policy: _Policy
    _count: int
    _size: int
    _version: int
    _hits: int
    _misses: int
    _evictions: int
    _on_evict: Optional[Callable[[Any, Any], object]]
    _lock: threading.Lock
    _access: Optional[Callable[[int, bool], None]]
    _ready: bool
    _weights: Optional[List[int]]  # per entry number, only with a maxweight
    _weight: int
    _maxweight: Optional[int]
    _getsizeof: Optional[Callable[[Any], SupportsIndex]]
    _ttl: Optional[float]
    _timer: Callable[[], float]
    # with a ttl, per entry number: its expiry time and its place in store order (a circular
    # list, ``_oldest`` first); else None
    _expires: Optional[List[float]]
    _sprev: Optional[List[int]]
    _snext: Optional[List[int]]
    _oldest: int

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Before __init__ (Cache.__new__, a subclass that forgets it) the cache is a valid
        # Cache(1, policy="lru"), as LRU is a valid LRU(1).
        self = super().__new__(cls)
        self._lock = threading.Lock()
        self._ready = False
        self._new_arena()
        self._policy = _LRUPolicy(1)
        self._access = None
        self._count = 1
        self._size = self._version = 0
        self._hits = self._misses = self._evictions = 0
        self._on_evict = None
        self._weights = self._maxweight = self._getsizeof = None
        self._weight = 0
        self._ttl = self._expires = self._sprev = self._snext = None
        self._timer = time.monotonic
        self._oldest = _EMPTY
        return self

    def __init__(self, count: SupportsIndex, pairs: Iterable[Tuple[_K, _V]] = (), *,
                 policy: str = DEFAULT_POLICY,
                 on_evict: Optional[Callable[[_K, _V], object]] = None,
                 maxweight: Optional[SupportsIndex] = None,
                 getsizeof: Optional[Callable[[_V], SupportsIndex]] = None,
                 ttl: Optional[float] = None, timer: Callable[[], float] = time.monotonic) -> None:
        count = check_count(count)
        policy = check_policy(policy)
        ttl = check_ttl(ttl)
        timer = check_timer(timer)
        maxweight = _check_callbacks(on_evict, maxweight, getsizeof)
        weights: Optional[List[int]] = None if maxweight is None else [0] * len(self._arena)
        stamps = None if ttl is None else (
            [0.0] * len(self._arena), [0] * len(self._arena), [0] * len(self._arena))
        fresh = _POLICY_CLASSES[policy](count)
        problem = None
        with self._lock:
            if self._ready:
                problem = "Cache.__init__ called twice"
            elif self._size:
                problem = "Cache.__init__ on a cache that already holds entries"
            else:
                self._ready = True
                self._policy = fresh
                self._access = getattr(fresh, "access", None)
                self._count = count
                self._on_evict = on_evict
                if weights is not None:
                    self._weights = weights
                    self._weight = 0
                    self._maxweight = maxweight
                self._getsizeof = getsizeof
                if stamps is not None:
                    self._ttl = ttl
                    self._expires, self._sprev, self._snext = stamps
                    self._oldest = _EMPTY
                self._timer = timer
        if problem is not None:
            raise RuntimeError(problem)
        for key, value in iter_pairs(pairs):
            self[key] = value

    # -- lookup (lock held) ---------------------------------------------------------------

    def _find(self, key: object, h: int, plain: bool) -> Optional[_Entry]:
        """With the lock held: the entry of ``key`` or None. The lock is released only while a
        key's ``__eq__`` runs (held again on return, also if it raised)."""
        restarts = 0
        while True:
            version = self._version
            table = self._table
            arena = self._arena
            mask = self._mask
            i = ((h & _M64) * _FIB & _M64) >> self._shift
            while True:
                n = table[i]
                if n == _EMPTY:
                    return None
                i = (i + 1) & mask
                e = arena[n]
                k = e.key
                if k is key:
                    return e
                if e.hash != h:
                    continue
                if plain and e.plain:
                    if k == key:
                        return e
                else:
                    self._lock.release()
                    try:
                        if restarts > MAX_RESTARTS:
                            raise RuntimeError("Cache mutated during key comparison")
                        equal = bool(k == key)
                    finally:
                        self._lock.acquire()
                    if self._version != version:
                        if equal and e.queue != _FREE and e.key is k:
                            return e
                        restarts += 1
                        break
                    if equal:
                        return e

    # -- arena and table: as _policy_c's, slot for slot (lock held, no user code) ---------

    def _new_arena(self) -> None:
        self._arena = []
        self._free = []  # free entry numbers, the last freed on top
        self._table = _EMPTY_ROW * _MIN_TABLE  # an array: not tracked by the GC
        self._mask = _MIN_TABLE - 1
        self._shift = 64 - (_MIN_TABLE.bit_length() - 1)

    def _table_remove(self, e: _Entry) -> None:
        table = self._table
        mask = self._mask
        shift = self._shift
        arena = self._arena
        i = ((e.hash & _M64) * _FIB & _M64) >> shift
        while table[i] != e.number:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            f = table[j]
            if f == _EMPTY:
                break
            home = ((arena[f].hash & _M64) * _FIB & _M64) >> shift
            if (j - home) & mask >= (j - i) & mask:
                table[i] = f
                i = j
        table[i] = _EMPTY

    def _take(self, spare: _Entry) -> _Entry:
        """A free entry (the last freed), else ``spare`` as a new one; the table is kept under
        half full first (``_policy_c.Cache._reserve``)."""
        if (self._size + 1) * 2 >= self._mask + 1:
            size = (self._mask + 1) * 2
            self._table = _EMPTY_ROW * size
            self._mask = size - 1
            self._shift = 64 - (size.bit_length() - 1)
            for e in self._arena:
                if e.queue != _FREE:
                    self._table_insert(e.number, e.hash)
        if self._free:
            return self._arena[self._free.pop()]
        spare.number = len(self._arena)
        self._arena.append(spare)
        if self._weights is not None:
            self._weights.append(0)
        if self._expires is not None:
            self._expires.append(0.0)
            self._sprev.append(0)  # type: ignore[union-attr]  # set with _expires
            self._snext.append(0)  # type: ignore[union-attr]
        return spare

    def _detach(self, e: _Entry, dropped: List[Any]) -> None:
        """Takes an entry the policy already let go of out of the index."""
        self._table_remove(e)
        self._free.append(e.number)
        e.queue = _FREE
        dropped.append(e.key)
        dropped.append(e.value)
        e.key = e.value = None
        self._size -= 1
        if self._expires is not None:
            self._unstamp(e.number)
        if self._weights is not None:
            self._weight -= self._weights[e.number]
            self._weights[e.number] = 0
        self._version += 1

    # -- store order, only with a ttl (lock held, no user code): as LRU's -----------------

    def _stamp(self, n: int, expires: float) -> None:
        """Gives entry number ``n`` its expiry time and makes it the newest in store order."""
        self._expires[n] = expires  # type: ignore[index]  # called only with a ttl
        sprev, snext = self._sprev, self._snext
        oldest = self._oldest
        if oldest == _EMPTY:
            sprev[n] = snext[n] = n  # type: ignore[index]
            self._oldest = n
        else:
            newest = sprev[oldest]  # type: ignore[index]
            snext[n] = oldest  # type: ignore[index]
            sprev[n] = newest  # type: ignore[index]
            snext[newest] = n  # type: ignore[index]
            sprev[oldest] = n  # type: ignore[index]

    def _unstamp(self, n: int) -> None:
        sprev, snext = self._sprev, self._snext
        nxt = snext[n]  # type: ignore[index]
        if nxt == n:
            self._oldest = _EMPTY
            return
        prv = sprev[n]  # type: ignore[index]
        snext[prv] = nxt  # type: ignore[index]
        sprev[nxt] = prv  # type: ignore[index]
        if self._oldest == n:
            self._oldest = nxt

    def _expired(self, e: _Entry, now: Optional[float]) -> bool:
        return self._expires is not None and self._expires[e.number] <= now  # type: ignore[operator]

    def _expire(self, now: float, dropped: List[Any]) -> None:
        """Reclaims, oldest stored first, every entry expired at ``now`` (as evictions)."""
        expires = self._expires
        while self._oldest != _EMPTY and expires[self._oldest] <= now:  # type: ignore[index]
            e = self._arena[self._oldest]
            self._policy.remove(e)
            self._detach(e, dropped)
            self._evictions += 1

    def _overweight(self, extra: int) -> bool:
        """True if the entries' weight plus ``extra`` is above maxweight (never overflows: as
        ``LRU._evict_until``)."""
        return self._weights is not None and self._weight - self._maxweight > -extra  # type: ignore[operator]

    # -- mapping --------------------------------------------------------------------------

    def _lookup(self, key: _K, default: Any) -> Any:
        """``get``: a hit is recorded by the policy; an expired entry is a miss, reclaimed."""
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        expired: List[Any] = []
        with self._lock:
            e = self._find(key, h, plain)
            if e is not None and self._expired(e, now):
                self._policy.remove(e)
                self._detach(e, expired)
                self._evictions += 1
                e = None
            if e is None:
                self._misses += 1
                if self._access is not None:
                    self._access(h, False)
                value = default
            else:
                self._hits += 1
                if self._access is not None:
                    self._access(h, True)
                self._policy.hit(e)
                value = e.value
        if expired:
            self._release_evicted(expired)
        return value

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        with self._lock:
            e = self._find(key, h, plain)
            return e is not None and not self._expired(e, now)

    def peek(self, key: _K, default: object = None) -> object:
        """The value of ``key`` (or ``default``) without counting or recording a read."""
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        with self._lock:
            e = self._find(key, h, plain)
            return default if e is None or self._expired(e, now) else e.value

    def setdefault(self, key: _K, default: Any = None) -> Any:
        return self._store(key, default, True)

    def _store(self, key: _K, value: _V, keep: bool) -> Any:
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        w = 1
        if self._weights is not None:
            if keep:
                # setdefault of a present key stores nothing, so weighs nothing (as LRU)
                with self._lock:
                    e = self._find(key, h, plain)
                    if e is not None and not self._expired(e, now):
                        self._policy.hit(e)
                        self._version += 1
                        return e.value
            w = self._weigh(value)  # user code: before the lock, the cache untouched if it fails
        spare = _Entry()  # allocated before the lock: allocating may run the GC
        dropped: List[Any] = []
        evicted: List[Any] = []
        try:
            with self._lock:
                if now is not None:
                    self._expire(now, evicted)  # expired entries go before any live one
                e = self._find(key, h, plain)
                if e is not None:
                    if now is not None and self._expired(e, now):
                        keep = False  # (a timer that went back): its value is gone, store ours
                    if keep:
                        value = e.value
                    else:
                        dropped.append(e.value)
                        e.value = value
                        if now is not None:
                            self._unstamp(e.number)
                            self._stamp(e.number, now + self._ttl)  # type: ignore[operator]
                    if not keep and self._weights is not None:
                        weights = self._weights
                        self._weight -= weights[e.number]
                        weights[e.number] = 0
                        if self._overweight(w):
                            # out of the policy while others make room: never its own victim
                            self._policy.remove(e)
                            while self._overweight(w):
                                self._detach(self._policy.victim(), evicted)
                                self._evictions += 1
                            self._policy.insert(e, self._size - 1)  # size <= count: evicts nothing
                        weights[e.number] = w
                        self._weight += w
                    self._policy.hit(e)  # a write is an access, as in LRU
                    self._version += 1
                else:
                    while self._size and self._overweight(w):
                        self._detach(self._policy.victim(), evicted)
                        self._evictions += 1
                    fresh = self._take(spare)
                    fresh.key = key
                    fresh.value = value
                    fresh.hash = h
                    fresh.plain = plain
                    self._table_insert(fresh.number, h)
                    if self._weights is not None:
                        self._weights[fresh.number] = w
                        self._weight += w
                    if now is not None:
                        self._stamp(fresh.number, now + self._ttl)  # type: ignore[operator]
                    self._size += 1
                    self._version += 1
                    for v in self._policy.insert(fresh, self._size - 1):
                        self._detach(v, evicted)
                        self._evictions += 1
        except BaseException:
            # a key's __eq__ raised: the expired entries reclaimed before it are reported
            self._release_evicted(evicted)
            raise
        del dropped
        self._release_evicted(evicted)
        return value

    def pop(self, key: _K, default: object = _MISSING, /) -> Any:
        return self._pop(key, default)

    def _pop(self, key: _K, default: object) -> Any:
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        dropped: List[Any] = []
        expired = False
        with self._lock:
            e = self._find(key, h, plain)
            if e is not None:
                expired = self._expired(e, now)
                if expired:
                    self._evictions += 1
                self._policy.remove(e)
                self._detach(e, dropped)
        return self._popped(key, default, dropped, expired)

    def popitem(self) -> Tuple[_K, _V]:
        """Removes and returns the entry the policy would evict next."""
        now = self._now()
        dropped: List[Any] = []
        evicted: List[Any] = []
        with self._lock:
            if now is not None:
                self._expire(now, evicted)
            if self._size:
                self._detach(self._policy.victim(), dropped)
        self._release_evicted(evicted)
        if not dropped:
            raise KeyError("popitem(): Cache is empty")
        return dropped[0], dropped[1]

    def clear(self) -> None:
        fresh = _POLICY_CLASSES[self._policy.name](self._count)
        weights: List[int] = []  # allocated before the lock
        stamps: Tuple[List[float], List[int], List[int]] = ([], [], [])
        with self._lock:
            old = self._arena
            self._new_arena()
            self._policy = fresh
            self._access = getattr(fresh, "access", None)
            self._size = 0
            if self._weights is not None:
                self._weights = weights
                self._weight = 0
            if self._expires is not None:
                self._expires, self._sprev, self._snext = stamps
                self._oldest = _EMPTY
            self._version += 1
            for e in old:  # no longer reachable: a stale match in _find must fail
                e.queue = _FREE
        del old  # keys' and values' __del__ run here, the cache consistent

    def update(self, other: Any = (), /, **kwargs: _V) -> None:
        if isinstance(other, (CacheType, LRUType)):
            # other[key] would be a read other's policy records; next victim first, as LRU
            for key, value in other.items()[::-1]:
                self[key] = value
        elif hasattr(other, "keys"):
            for key in list(other.keys()):
                self[key] = other[key]
        else:
            for key, value in list(iter_pairs(other)):
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value  # type: ignore[index]

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, count: SupportsIndex) -> None:
        """A new bound: the policy takes its shares of it, then its victims are evicted (and
        reported to on_evict) until at most ``count`` entries remain, as ``LRU.count``."""
        count = check_count(count)
        self._expire_now()
        evicted: List[Any] = []
        fresh: Tuple[List[_Entry], List[int], List[float], List[int], List[int], Dict[int, int]] = (
            [], [], [], [], [], {})  # allocated before the lock, for _compact
        with self._lock:
            if count != self._count:  # the same bound keeps the policy's state (its climber)
                self._count = count
                self._policy.resize(count)
            while self._size > count:
                self._detach(self._policy.victim(), evicted)
                self._evictions += 1
            if len(self._arena) // 2 > count and len(self._arena) > 64:
                self._compact(fresh)
        self._release_evicted(evicted)

    @count.deleter
    def count(self) -> None:
        raise AttributeError("count cannot be deleted")

    def _compact(self, fresh: Tuple[List[_Entry], List[int], List[float], List[int], List[int],
                                    Dict[int, int]]) -> None:
        """Renumbers the live entries in ``order()`` (the compiled engine's new arena, number
        for number) into the empty lists ``fresh`` and rebuilds the table at their size."""
        arena, weights, expires, sprev, snext, moved = fresh
        for e in self._policy.order():
            moved[e.number] = len(arena)
            arena.append(e)
        n = len(arena)
        j = 0
        while j < n:
            old = arena[j].number
            if self._weights is not None:
                weights.append(self._weights[old])
            if self._expires is not None:
                expires.append(self._expires[old])
                sprev.append(moved[self._sprev[old]])  # type: ignore[index]
                snext.append(moved[self._snext[old]])  # type: ignore[index]
            j += 1
        j = 0
        while j < n:
            arena[j].number = j
            j += 1
        self._arena = arena
        self._free = []
        if self._weights is not None:
            self._weights = weights
        if self._expires is not None:
            self._expires, self._sprev, self._snext = expires, sprev, snext
            if self._oldest != _EMPTY:
                self._oldest = moved[self._oldest]
        size = _MIN_TABLE
        while size <= 2 * n:
            size *= 2
        self._table = _EMPTY_ROW * size
        self._mask = size - 1
        self._shift = 64 - (size.bit_length() - 1)
        j = 0
        while j < n:
            self._table_insert(j, arena[j].hash)
            j += 1
        self._version += 1

    @property
    def policy(self) -> str:
        return self._policy.name

    # -- views ----------------------------------------------------------------------------

    def items(self) -> List[Tuple[_K, _V]]:
        self._expire_now()
        with self._lock:
            return [(e.key, e.value) for e in self._policy.order()]

    def keys(self) -> List[_K]:
        return [k for k, _ in self.items()]

    def values(self) -> List[_V]:
        return [v for _, v in self.items()]

    def _iterator(self, forward: bool) -> Iterator[_K]:
        self._expire_now()
        with self._lock:
            keys = [e.key for e in self._policy.order()]
            version = self._version
        if not forward:
            keys.reverse()
        return _Iterator(self, keys, version)

    def __iter__(self) -> Iterator[_K]:
        """The keys as ``keys()`` lists them; raises RuntimeError once the cache changed (a
        store, a removal, an eviction: not a read), as ``LRU``'s iterator."""
        return self._iterator(True)

    def __reversed__(self) -> Iterator[_K]:
        """The keys in the reverse of ``keys()`` (for ``"lru"``: least recent first)."""
        return self._iterator(False)

    # -- whole-object protocols ------------------------------------------------------------

    def _kwargs(self) -> Dict[str, Any]:
        return cache_kwargs(self._policy.name, self._on_evict, self._maxweight, self._getsizeof,
                            self._ttl, self._timer)

    def copy(self) -> Any:
        """A new cache of the same type, count, policy and options holding the same entries
        (not the policy's history: a ghost, a sketch, visited bits)."""
        return rebuild_cache(type(self), Cache, self._count, self.items()[::-1], self._kwargs())

    def __copy__(self) -> Any:
        return copy_cache(self, Cache, self._count, self._kwargs())

    def __reduce__(self) -> Tuple[Any, ...]:
        return reduce_cache(self, Cache, self._count, self._kwargs())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Cache, collections.abc.Mapping)):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        return cache_repr(self, self._count, self.items(), self._kwargs())

    def _sketch(self) -> Optional[Tuple[bytes, bytes, int]]:
        """Debug: the sketch (W-TinyLFU, TinyLFU) as (its ``4 * width`` counters, counter ``n`` of word ``w``
        at ``16 * w + n``; its ``width`` doorkeeper bits; additions since the last reset), or
        None for another policy."""
        with self._lock:
            policy = self._policy
            if not isinstance(policy, _SketchPolicy):
                return None
            sketch = policy.sketch
            return bytes(sketch.table), bytes(sketch.door), sketch.additions

    def _check(self) -> None:
        """Debug: asserts that the index, the policy's lists and the counters agree."""
        with self._lock:
            listed = list(self._policy.order())
            assert len(listed) == self._size, "lists and size disagree"
            assert self._size <= self._count, "size above count"
            n = 0
            for number in self._table:
                if number != _EMPTY:
                    assert self._arena[number].queue != _FREE, "free entry in the table"
                    n += 1
            assert n == self._size, "table and queues disagree"
            if self._weights is not None:
                total = sum(self._weights[e.number] for e in listed)
                assert total == self._weight, "weight total drifted"
                assert self._weight <= self._maxweight, "weight above maxweight"  # type: ignore[operator]
            if self._expires is not None:
                n = 0
                i = self._oldest
                while i != _EMPTY:
                    n += 1
                    assert n <= self._size, "store order longer than size"
                    assert self._arena[i].queue != _FREE, "free entry in the store order"
                    assert self._sprev[self._snext[i]] == i, "broken store-order link"  # type: ignore[index]
                    i = self._snext[i]  # type: ignore[index]
                    if i == self._oldest:
                        break
                assert n == self._size, "store order and size disagree"


class _Iterator:
    """A cache's keys, listed when iteration began; raises RuntimeError once the cache changed.
    As dict's: once exhausted it stays exhausted (and lets go of the cache); once failed it
    keeps failing."""

    __slots__ = ("_cache", "_keys", "_i", "_version")
    _cache: Optional[Cache[Any, Any]]
    _keys: List[Any]
    _i: int
    _version: int

    def __init__(self, cache: Cache[Any, Any], keys: List[Any], version: int) -> None:
        self._cache = cache
        self._keys = keys
        self._i = 0
        self._version = version

    def __iter__(self) -> _Iterator:
        return self

    def __next__(self) -> Any:
        cache = self._cache
        if cache is None:
            raise StopIteration
        if cache._version != self._version:
            raise RuntimeError("Cache mutated during iteration")
        i = self._i
        if i >= len(self._keys):
            self._cache = None
            self._keys = []
            raise StopIteration
        self._i = i + 1
        return self._keys[i]


MutableMapping.register(Cache)
CacheType.register(Cache)
