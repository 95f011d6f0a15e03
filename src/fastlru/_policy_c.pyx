# cython: language_level=3, freethreading_compatible=True
"""Compiled ``Cache``; ``_policy_py.py`` is its pure-Python twin, with the same policies step
for step (see its docstring for the papers and reference implementations each follows).

Entries live in a C arena of structs (key, value, hash, prev, next) indexed by int32 numbers,
with one byte of queue and one of policy bits per entry beside it; an open-addressing table
(linear probing, Fibonacci hashing, backward-shift deletion) maps hashes to entries, as in
``_lru_c``; each policy queue is a circular doubly-linked list through ``prev``/``next``
(``heads[q]`` the newest, its ``prev`` the oldest). W-TinyLFU's sketch is Caffeine's layout
(``_sketch.h``: a key's 4 counters in one 64-byte block of 4-bit counters), its doorkeeper one
bit a key; S3-FIFO's ghost is a table of (hash, insertion number)
slots, never a queue of keys.

Re-entrancy and threads follow ``_lru_c`` (CPython's lru_cache): the hash is computed once,
before any state is touched; pointer updates run no Python code, inside a critical section
ended while a key's ``__eq__`` runs (the probe restarts if the cache changed meanwhile);
dropped references are released, and ``on_evict`` called, once the cache is consistent.
"""
cimport cython
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t, INT32_MAX
from libc.string cimport memset
from libc.math cimport sqrt
from cpython.pyport cimport PY_SSIZE_T_MAX

from _collections_abc import Mapping, MutableMapping  # collections.abc's own module, loaded by os (issue #21: import cost)
from time import monotonic as _monotonic
GenericAlias = type(list[int])  # types.GenericAlias, without importing types

from . import _common  # its CacheInfo is made on first use (issue #21: import cost)
from ._common import (CacheType, DEFAULT_POLICY, LRUType, MAX_RESTARTS, POLICIES,
                      cache_kwargs, cache_repr, check_count, check_maxweight, check_policy,
                      check_time, check_timer, check_ttl, check_weight, copy_cache, iter_pairs,
                      rebuild_cache, reduce_cache)

assert MAX_RESTARTS == RESTART_LIMIT

__all__ = ["Cache", "POLICIES", "DEFAULT_POLICY"]


cdef extern from "Python.h":
    void _incref "Py_INCREF"(PyObject*)
    void _decref "Py_DECREF"(PyObject*)
    void _xdecref "Py_XDECREF"(PyObject*)
    int _richcmp_bool "PyObject_RichCompareBool"(PyObject*, PyObject*, int)
    int Py_EQ
    PyObject* _call2 "PyObject_CallFunctionObjArgs"(PyObject*, PyObject*, PyObject*, void*)
    void PyErr_WriteUnraisable(object)
    int Py_ReprEnter(object) except -1
    void Py_ReprLeave(object)
    ctypedef int (*visitproc)(PyObject*, void*)
    ctypedef int (*traverseproc)(PyObject*, visitproc, void*)
    ctypedef int (*inquiry)(PyObject*)
    ctypedef struct _TypeSlots "PyTypeObject":
        traverseproc tp_traverse
        inquiry tp_clear


cdef extern from "_sketch.h":
    int _sketch_frequency "fastlru_sketch_frequency"(const uint64_t*, const uint8_t*, uint64_t,
                                                     uint64_t, uint64_t) noexcept nogil
    int _sketch_record "fastlru_sketch_record"(uint64_t*, uint8_t*, uint64_t, uint64_t,
                                               uint64_t) noexcept nogil
    void _sketch_halve "fastlru_sketch_halve"(uint64_t*, size_t) noexcept nogil


cdef extern from "_lru_sync.h":
    ctypedef struct fastlru_cs:
        pass
    void fastlru_cs_begin(fastlru_cs*, object) noexcept
    void fastlru_cs_end(fastlru_cs*) noexcept
    const uint64_t FIB "FASTLRU_FIB"


cdef extern from "_ft_read.h":
    # free-threaded builds only: lock-free SIEVE hits (see the header); no-ops under the GIL
    ctypedef struct fastlru_ft:
        pass
    fastlru_ft* fastlru_ft_new() noexcept
    void fastlru_ft_free(fastlru_ft*) noexcept
    void fastlru_ft_enable(fastlru_ft*) noexcept
    bint fastlru_ft_on(fastlru_ft*) noexcept
    PyObject* fastlru_ft_get(fastlru_ft*, PyObject*) noexcept
    object fastlru_ft_steal(PyObject*)  # takes over a new reference (never NULL)
    bint fastlru_ft_indexable(PyObject*) noexcept
    void fastlru_ft_record(fastlru_ft*, PyObject*) noexcept
    void fastlru_ft_record_clear(fastlru_ft*) noexcept
    bint fastlru_ft_lock(fastlru_ft*) noexcept
    void fastlru_ft_unlock(fastlru_ft*) noexcept
    void fastlru_ft_drain(fastlru_ft*, PyObject*) noexcept
    void fastlru_ft_publish(fastlru_ft*, PyObject*, PyObject*) noexcept
    uint64_t fastlru_ft_hits(fastlru_ft*) noexcept
    void fastlru_ft_clear_hits(fastlru_ft*) noexcept
    int fastlru_ft_traverse(fastlru_ft*, visitproc, void*) noexcept
    void fastlru_ft_gc_clear(fastlru_ft*) noexcept
    PyObject* fastlru_ft_index(fastlru_ft*, int) noexcept
    const int FT_STRIPES "FASTLRU_FT_STRIPES"
    Py_ssize_t fastlru_ft_pending(fastlru_ft*) noexcept


ctypedef struct Entry:
    PyObject* key      # NULL when the entry is free
    PyObject* value
    Py_hash_t hash
    int32_t prev
    int32_t next


ctypedef struct Stamp:
    # Per entry, only with a ttl (as _lru_c): when it expires, and its place in store order (a
    # second circular list, oldest first), so expired entries are found oldest first.
    double expires
    int32_t older
    int32_t newer


cdef enum:
    EMPTY = -1
    MIN_TABLE_BITS = 3
    RESTART_LIMIT = 1000
    INLINE_DROPS = 4
    # policies
    P_LRU = 0
    P_SIEVE = 1
    P_S3FIFO = 2
    P_WTINYLFU = 3  # P_* follow POLICIES' order (checked at import)
    P_TINYLFU = 4
    # queues (as the twin's)
    Q_FREE = 0
    Q_MAIN = 1
    Q_SMALL = 2
    Q_WINDOW = 3
    Q_PROBATION = 4
    Q_PROTECTED = 5
    NQUEUES = 6
    GHOST_WAYS = 4
    MIN_SKETCH_WIDTH = 32  # as the twin's: one 64-byte block of 4-bit counters, at least
    MAX_SKETCH_WIDTH = 1 << 24  # as the twin's: a bound on its memory (32 MiB)
    MAX_GHOST_BUCKETS = 1 << 20
    HASHDOS = 6
    SAMPLE = 2  # the climber decides every max(SAMPLE * count, MIN_SAMPLE) requests
    MIN_SAMPLE = 4096
    SHADOW_MIN = 256  # the shadow samples 1 key in 2**k, k the largest with count >> k >= this


cdef uint64_t M64 = <uint64_t>-1
cdef double STEP = 0.125  # of count (Caffeine: 0.0625, every 10 * count requests)
cdef double DECAY = 0.98
cdef double RESTART = 0.05
cdef double FIRST_GAP = 0.03  # twin's _WTinyLFUPolicy.FIRST_GAP


cdef inline size_t _home(Py_hash_t h, int shift) noexcept nogil:
    return <size_t>((<uint64_t>h * <uint64_t>FIB) >> shift)


cdef inline uint64_t _spread(Py_hash_t h) noexcept nogil:
    cdef uint64_t x = <uint64_t>h * <uint64_t>FIB
    return x ^ (x >> 32)


cdef struct Dropped:
    PyObject** items
    Py_ssize_t n
    Py_ssize_t cap
    PyObject* inline_items[INLINE_DROPS]


cdef inline void _dropped_init(Dropped* d) noexcept:
    d.items = d.inline_items
    d.n = 0
    d.cap = INLINE_DROPS


cdef int _dropped_room(Dropped* d, Py_ssize_t extra) noexcept:
    """Room for ``extra`` more references; -1 (no exception set) if memory ran out."""
    cdef PyObject** items
    cdef Py_ssize_t cap, i
    if d.n + extra <= d.cap:
        return 0
    cap = 2 * d.cap if 2 * d.cap >= d.n + extra else d.n + extra
    if <size_t>cap > <size_t>PY_SSIZE_T_MAX // sizeof(PyObject*):
        return -1
    items = <PyObject**>PyMem_Malloc(cap * sizeof(PyObject*))
    if items == NULL:
        return -1
    for i in range(d.n):
        items[i] = d.items[i]
    if d.items != d.inline_items:
        PyMem_Free(d.items)
    d.items = items
    d.cap = cap
    return 0


cdef void _dropped_release(Dropped* d) noexcept:
    cdef Py_ssize_t i
    for i in range(d.n):
        _decref(d.items[i])
    d.n = 0
    if d.items != d.inline_items:
        PyMem_Free(d.items)
        d.items = d.inline_items
        d.cap = INLINE_DROPS


cdef object _MISSING = object()


cdef int _policy_number(object policy) except -1:
    return POLICIES.index(check_policy(policy))  # numbered as the P_* constants


@cython.trashcan(True)
@cython.auto_pickle(False)
cdef class Cache:
    """A bounded mapping whose eviction policy is chosen by name (``POLICIES``).

    >>> cache = Cache(1000, policy="wtinylfu")
    >>> cache["k"] = "v"; cache.get("k")
    'v'
    """

    cdef Entry* entries
    cdef uint8_t* queue           # per entry: the queue it is in
    cdef uint8_t* bits            # per entry: SIEVE's visited bit, S3-FIFO's frequency
    cdef int32_t* table
    cdef size_t tmask
    cdef int shift
    cdef Py_ssize_t alloc
    cdef Py_ssize_t fill
    cdef int32_t free_head
    cdef int32_t heads[NQUEUES]
    cdef Py_ssize_t lsize[NQUEUES]
    cdef Py_ssize_t size
    cdef Py_ssize_t _count
    cdef int kind
    cdef size_t version
    cdef uint64_t hits, misses, evictions
    cdef fastlru_ft* ft           # free-threaded builds: the read index (_ft_read.h), else NULL
    cdef object on_evict
    cdef object __weakref__
    cdef bint ready
    # weights, only with a maxweight (as _lru_c): one Py_ssize_t per allocated entry
    cdef bint weighted
    cdef Py_ssize_t* weights
    cdef Py_ssize_t total_weight
    cdef Py_ssize_t _maxweight
    cdef object getsizeof
    # expiry, only with a ttl (as _lru_c)
    cdef bint timed
    cdef Stamp* stamps
    cdef int32_t oldest
    cdef double _ttl
    cdef object _timer
    # SIEVE
    cdef int32_t hand
    # S3-FIFO
    cdef Py_ssize_t small_cap
    cdef int64_t* ghost_hashes
    cdef int64_t* ghost_times
    cdef uint64_t ghost_mask
    cdef int64_t ghost_cap
    cdef int64_t ghost_now
    # W-TinyLFU
    cdef Py_ssize_t window_cap
    cdef Py_ssize_t protected_cap
    cdef uint64_t* sketch         # 4 * width 4-bit counters, 16 to a word, 8 words to a block
    cdef uint8_t* door            # one bit per slot
    cdef uint64_t smask           # width - 1: the doorkeeper's slots
    cdef uint64_t bmask           # width / 32 - 1: the sketch's blocks
    cdef Py_ssize_t width
    cdef Py_ssize_t additions
    cdef Py_ssize_t sample
    cdef uint64_t random
    cdef Py_ssize_t sample_hits, sample_misses
    cdef Py_ssize_t climb_sample
    cdef bint full                # the climber waits for the cache to fill once
    cdef double previous_rate
    cdef double step
    # W-TinyLFU's shadow: an LRU of sampled hashes (twin: _WTinyLFUPolicy.shadow), slots
    # 0..sh_n-1 in a circular list from sh_head (the newest), found through sh_table
    cdef Py_hash_t* sh_hash
    cdef int32_t* sh_prev
    cdef int32_t* sh_next
    cdef int32_t* sh_table
    cdef uint64_t sh_tmask
    cdef Py_ssize_t sh_alloc, sh_cap, sh_n
    cdef int32_t sh_head
    cdef uint64_t rate_mask
    cdef Py_ssize_t shadow_lru, shadow_ours

    def __cinit__(self, *args, **kwargs):
        self.free_head = EMPTY
        self.oldest = EMPTY
        self._timer = _monotonic
        self._count = 1
        self.table = self._new_table(MIN_TABLE_BITS)
        self.tmask = (1 << MIN_TABLE_BITS) - 1
        self.shift = 64 - MIN_TABLE_BITS
        self._setup_policy(P_LRU, 1)  # before __init__: a valid Cache(1, policy="lru")
        self.ft = fastlru_ft_new()

    def __init__(self, count, pairs=(), *, policy=DEFAULT_POLICY, on_evict=None,
                 maxweight=None, getsizeof=None, ttl=None, timer=_monotonic):
        cdef Py_ssize_t c = check_count(count)
        cdef int kind = _policy_number(policy)
        cdef fastlru_cs cs
        cdef str problem = None
        cdef Py_ssize_t mw = 0
        cdef Py_ssize_t* weights = NULL
        cdef Stamp* stamps = NULL
        cdef Py_ssize_t i
        ttl = check_ttl(ttl)
        check_timer(timer)
        if on_evict is not None and not callable(on_evict):
            raise TypeError("on_evict must be callable")
        if getsizeof is not None and not callable(getsizeof):
            raise TypeError("getsizeof must be callable")
        if maxweight is not None:
            mw = check_maxweight(maxweight)
        elif getsizeof is not None:
            raise TypeError("getsizeof needs maxweight")
        fastlru_cs_begin(&cs, self)
        if self.ready:
            problem = "Cache.__init__ called twice"
        elif self.size:
            problem = "Cache.__init__ on a cache that already holds entries"
        else:
            if maxweight is not None:
                # one weight per allocated entry: a cache used before __init__ has an arena
                weights = <Py_ssize_t*>PyMem_Malloc(
                    (self.alloc if self.alloc > 0 else 1) * sizeof(Py_ssize_t))
                if weights == NULL:
                    fastlru_cs_end(&cs)
                    raise MemoryError()
                for i in range(self.alloc):
                    weights[i] = 0
            if ttl is not None:
                stamps = <Stamp*>PyMem_Malloc((self.alloc if self.alloc > 0 else 1) * sizeof(Stamp))
                if stamps == NULL:
                    fastlru_cs_end(&cs)
                    PyMem_Free(weights)
                    raise MemoryError()
            try:
                self._setup_policy(kind, c)
            except MemoryError:
                fastlru_cs_end(&cs)
                PyMem_Free(weights)
                PyMem_Free(stamps)
                raise
            self.ready = True
            self._count = c
            self.on_evict = on_evict
            if weights != NULL:
                self.weighted = True
                self.weights = weights
                self.total_weight = 0
                self._maxweight = mw
            self.getsizeof = getsizeof
            if stamps != NULL:
                self.timed = True
                self.stamps = stamps
                self._ttl = ttl
                self.oldest = EMPTY
            self._timer = timer
            if kind == P_SIEVE and not self.timed:
                fastlru_ft_enable(self.ft)  # hits write nothing: served from the read index
        fastlru_cs_end(&cs)
        if problem is not None:
            raise RuntimeError(problem)
        for key, value in iter_pairs(pairs):
            self[key] = value

    def __dealloc__(self):
        fastlru_ft_free(self.ft)
        self.ft = NULL
        self._free_entries(self.entries, self.fill)
        self.entries = NULL
        PyMem_Free(self.queue)
        PyMem_Free(self.bits)
        PyMem_Free(self.table)
        PyMem_Free(self.ghost_hashes)
        PyMem_Free(self.ghost_times)
        PyMem_Free(self.sketch)
        PyMem_Free(self.door)
        PyMem_Free(self.sh_hash)
        PyMem_Free(self.sh_prev)
        PyMem_Free(self.sh_next)
        PyMem_Free(self.sh_table)
        PyMem_Free(self.weights)
        PyMem_Free(self.stamps)

    @cython.final
    cdef int _setup_policy(self, int kind, Py_ssize_t count) except -1:
        """Fresh policy state for ``kind`` (no Python code; allocates, so MemoryError)."""
        cdef Py_ssize_t buckets = 1, n, width = MIN_SKETCH_WIDTH, i, small, w
        cdef int q
        cdef int64_t* gh = NULL
        cdef int64_t* gt = NULL
        cdef uint64_t* sk = NULL
        cdef uint8_t* dr = NULL
        cdef Py_ssize_t rate = 1, shn = 0, tsize = 0
        cdef Py_hash_t* shh = NULL
        cdef int32_t* shp = NULL
        cdef int32_t* shx = NULL
        cdef int32_t* sht = NULL
        if kind == P_S3FIFO:
            small = count // 10
            self.small_cap = small if small > 1 else 1
            self.ghost_cap = count - self.small_cap if count - self.small_cap > 1 else 1
            buckets = 1
            while buckets * GHOST_WAYS < 2 * self.ghost_cap and buckets < MAX_GHOST_BUCKETS:
                buckets *= 2
            n = buckets * GHOST_WAYS
            gh = <int64_t*>PyMem_Malloc(n * sizeof(int64_t))
            gt = <int64_t*>PyMem_Malloc(n * sizeof(int64_t))
            if gh == NULL or gt == NULL:
                PyMem_Free(gh)
                PyMem_Free(gt)
                raise MemoryError()
            for i in range(n):
                gh[i] = 0
                gt[i] = -1
        elif kind == P_WTINYLFU or kind == P_TINYLFU:  # the sketch
            width = MIN_SKETCH_WIDTH
            while width < count and width < MAX_SKETCH_WIDTH:
                width *= 2
            sk = <uint64_t*>PyMem_Malloc(2 * width)  # 4 * width counters of 4 bits
            dr = <uint8_t*>PyMem_Malloc(width // 8)
            if sk == NULL or dr == NULL:
                PyMem_Free(sk)
                PyMem_Free(dr)
                raise MemoryError()
            memset(sk, 0, 2 * width)
            memset(dr, 0, width // 8)
            if kind == P_WTINYLFU:
                while count // (2 * rate) >= SHADOW_MIN:
                    rate *= 2
                shn = count // rate if count // rate > 1 else 1
                tsize = 8
                while tsize < 2 * shn:
                    tsize *= 2
                shh = <Py_hash_t*>PyMem_Malloc(shn * sizeof(Py_hash_t))
                shp = <int32_t*>PyMem_Malloc(shn * sizeof(int32_t))
                shx = <int32_t*>PyMem_Malloc(shn * sizeof(int32_t))
                sht = <int32_t*>PyMem_Malloc(tsize * sizeof(int32_t))
                if shh == NULL or shp == NULL or shx == NULL or sht == NULL:
                    PyMem_Free(sk)
                    PyMem_Free(dr)
                    PyMem_Free(shh)
                    PyMem_Free(shp)
                    PyMem_Free(shx)
                    PyMem_Free(sht)
                    raise MemoryError()
                memset(sht, 0xFF, tsize * sizeof(int32_t))  # EMPTY everywhere
        PyMem_Free(self.ghost_hashes)
        PyMem_Free(self.ghost_times)
        PyMem_Free(self.sketch)
        PyMem_Free(self.door)
        PyMem_Free(self.sh_hash)
        PyMem_Free(self.sh_prev)
        PyMem_Free(self.sh_next)
        PyMem_Free(self.sh_table)
        self.ghost_hashes = gh
        self.ghost_times = gt
        self.sketch = sk
        self.door = dr
        self.sh_hash = shh
        self.sh_prev = shp
        self.sh_next = shx
        self.sh_table = sht
        self.sh_alloc = self.sh_cap = shn
        self.sh_tmask = <uint64_t>(tsize - 1) if tsize else 0
        self.sh_n = 0
        self.sh_head = EMPTY
        self.rate_mask = <uint64_t>(rate - 1)
        self.shadow_lru = self.shadow_ours = 0
        self.kind = kind
        for q in range(NQUEUES):
            self.heads[q] = EMPTY
            self.lsize[q] = 0
        self.hand = EMPTY
        if kind == P_S3FIFO:
            self.ghost_mask = <uint64_t>(buckets - 1)
            self.ghost_now = 0
        elif kind == P_WTINYLFU or kind == P_TINYLFU:
            self.width = width
            self.smask = <uint64_t>(width - 1)
            self.bmask = <uint64_t>(width // 32 - 1)
            self.additions = 0
            self.sample = 10 * (count if count > 1 else 1)
            self.random = 0x2545F4914F6CDD1D
        if kind == P_TINYLFU:
            self.window_cap = 1
            self.protected_cap = 0
        elif kind == P_WTINYLFU:
            w = count // 100
            self.window_cap = w if w > 1 else 1
            self.protected_cap = <Py_ssize_t>(<double>(count - self.window_cap) * 0.8)
            self.sample_hits = self.sample_misses = 0
            if count >= PY_SSIZE_T_MAX // SAMPLE:
                self.climb_sample = PY_SSIZE_T_MAX  # never reached
            else:
                self.climb_sample = SAMPLE * count if SAMPLE * count > MIN_SAMPLE else MIN_SAMPLE
            self.full = False
            self.previous_rate = -1.0  # none yet: the first sample only sets it
            self.step = -STEP * <double>count
        return 0

    @cython.final
    cdef void _resize_policy(self, Py_ssize_t count) noexcept:
        """The policy's shares of a new ``count`` (no Python code, no allocation), as the
        twin's ``resize``: S3-FIFO's small FIFO and ghost; W-TinyLFU's window, protected
        segment, sketch period and hill climber start again (Caffeine's setMaximumSize)."""
        cdef Py_ssize_t small, w, rate
        if self.kind == P_S3FIFO:
            small = count // 10
            self.small_cap = small if small > 1 else 1
            self.ghost_cap = count - self.small_cap if count - self.small_cap > 1 else 1
        elif self.kind == P_TINYLFU:
            self.sample = 10 * (count if count > 1 else 1)  # its window and main stay as they are
        elif self.kind == P_WTINYLFU:
            self.sample = 10 * (count if count > 1 else 1)
            w = count // 100
            self.window_cap = w if w > 1 else 1
            self.protected_cap = <Py_ssize_t>(<double>(count - self.window_cap) * 0.8)
            self.sample_hits = self.sample_misses = 0
            if count >= PY_SSIZE_T_MAX // SAMPLE:
                self.climb_sample = PY_SSIZE_T_MAX  # never reached
            else:
                self.climb_sample = SAMPLE * count if SAMPLE * count > MIN_SAMPLE else MIN_SAMPLE
            self.full = False  # as at creation: the climber waits for the cache to fill again
            self.previous_rate = -1.0  # and its first sample only sets the reference
            self.step = -STEP * <double>count
            # the shadow starts empty, at the new count's rate and length, or at a lower rate
            # if that is longer than allocated (twin's resize)
            self.sh_n = 0
            self.sh_head = EMPTY
            memset(self.sh_table, 0xFF, (self.sh_tmask + 1) * sizeof(int32_t))
            rate = 1
            while count // (2 * rate) >= SHADOW_MIN:
                rate *= 2
            while count // rate > self.sh_alloc:
                rate *= 2
            self.rate_mask = <uint64_t>(rate - 1)
            self.sh_cap = count // rate if count // rate > 1 else 1
            self.shadow_lru = self.shadow_ours = 0

    # -- arena and table (section held, no Python code) --------------------------------------

    @cython.final
    cdef int32_t* _new_table(self, int bits) except NULL:
        cdef size_t n = (<size_t>1) << bits
        cdef size_t i
        cdef int32_t* table
        if n > <size_t>PY_SSIZE_T_MAX // sizeof(int32_t):
            raise MemoryError()
        table = <int32_t*>PyMem_Malloc(n * sizeof(int32_t))
        if table == NULL:
            raise MemoryError()
        for i in range(n):
            table[i] = EMPTY
        return table

    @cython.final
    cdef inline void _table_insert(self, int32_t e, Py_hash_t h) noexcept:
        cdef size_t i = _home(h, self.shift)
        while self.table[i] != EMPTY:
            i = (i + 1) & self.tmask
        self.table[i] = e

    @cython.final
    cdef void _table_remove(self, int32_t e) noexcept:
        cdef size_t mask = self.tmask
        cdef int32_t* table = self.table
        cdef size_t i = _home(self.entries[e].hash, self.shift)
        cdef size_t j
        cdef int32_t f
        while table[i] != e:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            f = table[j]
            if f == EMPTY:
                break
            if ((j - _home(self.entries[f].hash, self.shift)) & mask) >= ((j - i) & mask):
                table[i] = f
                i = j
        table[i] = EMPTY

    @cython.final
    cdef int _rebuild_table(self, int bits) except -1:
        cdef int32_t* table = self._new_table(bits)
        cdef Py_ssize_t e
        PyMem_Free(self.table)
        self.table = table
        self.tmask = ((<size_t>1) << bits) - 1
        self.shift = 64 - bits
        for e in range(self.fill):
            if self.entries[e].key != NULL:
                self._table_insert(<int32_t>e, self.entries[e].hash)
        return 0

    @cython.final
    cdef inline bint _has_room(self) noexcept:
        """One more entry needs no allocation (what ``_reserve`` checks first)."""
        return ((<size_t>self.size + 1) * 2 < self.tmask + 1
                and (self.free_head != EMPTY or self.fill < self.alloc))

    @cython.final
    cdef int _reserve(self) except -1:
        """Room for one more entry: a free entry and a table under half full."""
        cdef Py_ssize_t new_alloc
        cdef Entry* entries
        cdef uint8_t* q
        cdef Py_ssize_t* weights
        cdef Stamp* stamps
        if (<size_t>self.size + 1) * 2 >= self.tmask + 1:
            self._rebuild_table(64 - self.shift + 1)
        if self.free_head != EMPTY or self.fill < self.alloc:
            return 0
        new_alloc = self.alloc * 2 if self.alloc < 1024 else self.alloc + self.alloc // 4
        if new_alloc < 8:
            new_alloc = 8
        if new_alloc > self._count:
            new_alloc = self._count if self._count > self.alloc else self.alloc + 1
        if new_alloc > INT32_MAX - 1:
            if self.alloc >= INT32_MAX - 1:
                raise MemoryError("a Cache holds at most 2**31 - 2 entries")
            new_alloc = INT32_MAX - 1
        if <size_t>new_alloc > <size_t>PY_SSIZE_T_MAX // sizeof(Entry):
            raise MemoryError()
        entries = <Entry*>PyMem_Realloc(self.entries, new_alloc * sizeof(Entry))
        if entries == NULL:
            raise MemoryError()
        self.entries = entries
        q = <uint8_t*>PyMem_Realloc(self.queue, new_alloc)
        if q == NULL:
            raise MemoryError()
        self.queue = q
        q = <uint8_t*>PyMem_Realloc(self.bits, new_alloc)
        if q == NULL:
            raise MemoryError()
        self.bits = q
        if self.weighted:
            weights = <Py_ssize_t*>PyMem_Realloc(self.weights, new_alloc * sizeof(Py_ssize_t))
            if weights == NULL:
                raise MemoryError()
            self.weights = weights
        if self.timed:
            stamps = <Stamp*>PyMem_Realloc(self.stamps, new_alloc * sizeof(Stamp))
            if stamps == NULL:
                raise MemoryError()
            self.stamps = stamps
        self.alloc = new_alloc
        return 0

    # -- queues (section held, no Python code) -------------------------------------------------

    @cython.final
    cdef inline void _push(self, int q, int32_t e) noexcept:
        """Makes ``e`` the newest of queue ``q``."""
        cdef Entry* ents = self.entries
        cdef int32_t head = self.heads[q]
        cdef int32_t tail
        if head == EMPTY:
            ents[e].prev = e
            ents[e].next = e
        else:
            tail = ents[head].prev
            ents[e].next = head
            ents[e].prev = tail
            ents[tail].next = e
            ents[head].prev = e
        self.heads[q] = e
        self.queue[e] = <uint8_t>q
        self.lsize[q] += 1

    @cython.final
    cdef inline void _remove(self, int32_t e) noexcept:
        cdef Entry* ents = self.entries
        cdef int q = self.queue[e]
        cdef int32_t nxt = ents[e].next
        cdef int32_t prv
        self.lsize[q] -= 1
        if nxt == e:
            self.heads[q] = EMPTY
            return
        prv = ents[e].prev
        ents[prv].next = nxt
        ents[nxt].prev = prv
        if self.heads[q] == e:
            self.heads[q] = nxt

    @cython.final
    cdef inline void _to_front(self, int q, int32_t e) noexcept:
        """Makes ``e``, already in queue ``q``, its newest (as ``_lru_c.LRU._promote``: no
        size or queue bookkeeping; the oldest becomes the newest by moving the head)."""
        cdef Entry* ents = self.entries
        cdef int32_t head = self.heads[q]
        cdef int32_t tail, prv, nxt
        if e == head:
            return
        tail = ents[head].prev
        if e != tail:
            prv = ents[e].prev
            nxt = ents[e].next
            ents[prv].next = nxt
            ents[nxt].prev = prv
            ents[e].next = head
            ents[e].prev = tail
            ents[tail].next = e
            ents[head].prev = e
        self.heads[q] = e

    @cython.final
    cdef inline int32_t _last(self, int q) noexcept:
        cdef int32_t head = self.heads[q]
        return EMPTY if head == EMPTY else self.entries[head].prev

    # -- policies (section held, no Python code) -----------------------------------------------

    @cython.final
    cdef inline void _hit(self, int32_t e) noexcept:
        cdef int kind = self.kind
        if kind == P_SIEVE:
            if not self.bits[e]:
                self.bits[e] = 1  # the only write of a SIEVE hit, and only the first time
        elif kind == P_LRU:
            self._to_front(Q_MAIN, e)
        elif kind == P_S3FIFO:
            if self.bits[e] < 3:
                self.bits[e] += 1
        else:
            self._slru_hit(e)

    @cython.final
    cdef inline void _slru_hit(self, int32_t e) noexcept:
        """W-TinyLFU's hit: newest of its window or protected segment; from probation, to
        protected (whose oldest go back to probation)."""
        cdef int q = self.queue[e]
        cdef int32_t d
        if q != Q_PROBATION:
            self._to_front(q, e)
            return
        self._remove(e)
        self._push(Q_PROTECTED, e)
        while self.lsize[Q_PROTECTED] > self.protected_cap:
            d = self._last(Q_PROTECTED)
            self._remove(d)
            self._push(Q_PROBATION, d)

    @cython.final
    cdef inline int32_t _toward_newer(self, int32_t e) noexcept:
        return EMPTY if e == self.heads[Q_MAIN] else self.entries[e].prev

    @cython.final
    cdef void _unfile(self, int32_t e) noexcept:
        """Takes ``e`` out of its queue (pop, del)."""
        if self.kind == P_SIEVE and self.hand == e:
            self.hand = self._toward_newer(e)
        self._remove(e)

    @cython.final
    cdef int32_t _victim(self) noexcept:
        """Picks the entry the policy evicts next and takes it out of its queue."""
        cdef int kind = self.kind
        cdef int32_t o, t
        if kind == P_LRU:
            o = self._last(Q_MAIN)
            self._remove(o)
            return o
        if kind == P_SIEVE:
            o = self.hand if self.hand != EMPTY else self._last(Q_MAIN)
            while self.bits[o]:
                self.bits[o] = 0
                fastlru_ft_record(self.ft, self.entries[o].key)
                t = self._toward_newer(o)
                o = t if t != EMPTY else self._last(Q_MAIN)
            self.hand = self._toward_newer(o)
            self._remove(o)
            return o
        if kind == P_S3FIFO:
            if self.lsize[Q_SMALL] >= self.small_cap or self.lsize[Q_MAIN] == 0:
                while self.lsize[Q_SMALL]:
                    t = self._last(Q_SMALL)
                    self._remove(t)
                    if self.bits[t] >= 1:
                        self.bits[t] = 0
                        self._push(Q_MAIN, t)
                    else:
                        self._ghost_add(self.entries[t].hash)
                        return t
            while True:
                t = self._last(Q_MAIN)
                self._remove(t)
                if self.bits[t]:
                    self.bits[t] -= 1
                    self._push(Q_MAIN, t)
                else:
                    return t
        o = self._last(Q_PROBATION)
        if o == EMPTY:
            o = self._last(Q_PROTECTED)
        if o == EMPTY:
            o = self._last(Q_WINDOW)
        self._remove(o)
        return o

    @cython.final
    cdef int _file(self, int32_t e, int32_t* out) noexcept:
        """Files the new entry ``e`` (already counted in size); the entries it evicts go to
        ``out`` (at most one: size <= count held before). Returns how many."""
        cdef int n = 0
        cdef int32_t c, v
        cdef Py_ssize_t size = self.size
        if self.kind < P_WTINYLFU:
            if size - 1 >= self._count:
                out[0] = self._victim()
                n = 1
            self.bits[e] = 0
            if self.kind == P_S3FIFO and self._ghost_take(self.entries[e].hash):
                self._push(Q_MAIN, e)
            else:
                self._push(Q_SMALL if self.kind == P_S3FIFO else Q_MAIN, e)
            return n
        self._increment(self.entries[e].hash)
        self._push(Q_WINDOW, e)
        if size >= self._count:
            self.full = True
        while self.lsize[Q_WINDOW] > self.window_cap:
            c = self._last(Q_WINDOW)
            self._remove(c)
            self.queue[c] = Q_PROBATION
            if size > self._count:
                v = self._last(Q_PROBATION)
                if v == EMPTY:
                    v = self._last(Q_PROTECTED)
                if v == EMPTY or not self._admit(c, v):
                    out[n] = c
                    n += 1
                    size -= 1
                    continue
                self._remove(v)
                out[n] = v
                n += 1
                size -= 1
            self._push(Q_PROBATION, c)
        while size > self._count:
            v = self._last(Q_PROBATION)
            if v == EMPTY:
                v = self._last(Q_PROTECTED)
            if v == EMPTY:
                v = self._last(Q_WINDOW)
            self._remove(v)
            out[n] = v
            n += 1
            size -= 1
        return n

    # S3-FIFO's ghost

    @cython.final
    cdef inline Py_ssize_t _ghost_bucket(self, Py_hash_t h) noexcept:
        return <Py_ssize_t>((_spread(h) >> 17) & self.ghost_mask) * GHOST_WAYS

    @cython.final
    cdef bint _ghost_take(self, Py_hash_t h) noexcept:
        cdef Py_ssize_t b = self._ghost_bucket(h)
        cdef Py_ssize_t i
        cdef int64_t t
        for i in range(b, b + GHOST_WAYS):
            t = self.ghost_times[i]
            if t >= 0 and self.ghost_hashes[i] == h and self.ghost_now - t < self.ghost_cap:
                self.ghost_times[i] = -1
                return True
        return False

    @cython.final
    cdef void _ghost_add(self, Py_hash_t h) noexcept:
        cdef Py_ssize_t b = self._ghost_bucket(h)
        cdef Py_ssize_t best = b
        cdef Py_ssize_t i
        cdef int64_t t
        self.ghost_now += 1
        for i in range(b, b + GHOST_WAYS):
            t = self.ghost_times[i]
            if t >= 0 and self.ghost_hashes[i] == h:
                best = i
                break
            if t < 0 or self.ghost_now - t >= self.ghost_cap:
                best = i
                break
            if t < self.ghost_times[best]:
                best = i
        self.ghost_hashes[best] = h
        self.ghost_times[best] = self.ghost_now

    # W-TinyLFU's sketch, admission and hill climber

    @cython.final
    cdef int _frequency(self, Py_hash_t h) noexcept:
        return _sketch_frequency(self.sketch, self.door, self.bmask, self.smask, _spread(h))

    @cython.final
    cdef inline void _increment(self, Py_hash_t h) noexcept:
        if _sketch_record(self.sketch, self.door, self.bmask, self.smask, _spread(h)):
            self.additions += 1
            if self.additions >= self.sample:
                self._age()

    @cython.final
    cdef void _age(self) noexcept:
        """Halves every counter and clears the doorkeeper (TinyLFU's reset)."""
        self.additions //= 2
        _sketch_halve(self.sketch, <size_t>(self.width // 4))
        memset(self.door, 0, self.width // 8)

    @cython.final
    cdef bint _admit(self, int32_t candidate, int32_t victim) noexcept:
        cdef int fc = self._frequency(self.entries[candidate].hash)
        cdef int fv = self._frequency(self.entries[victim].hash)
        cdef uint64_t x
        if fc > fv:
            return True
        if fc >= HASHDOS:
            x = self.random
            x ^= (x << 13) & M64
            x ^= x >> 7
            x ^= (x << 17) & M64
            self.random = x
            return (x & 127) == 0
        return False

    @cython.final
    cdef inline void _access(self, Py_hash_t h, bint hit) noexcept:
        if self.kind == P_WTINYLFU and ((_spread(h) >> 48) & self.rate_mask) == 0:
            self._shadow_access(h, hit)
        if hit:
            self._increment(h)
            if self.kind == P_TINYLFU:
                return
            if not self.full:
                return
            self.sample_hits += 1
        elif not self.full or self.kind == P_TINYLFU:
            return
        else:
            self.sample_misses += 1
        if self.sample_hits + self.sample_misses >= self.climb_sample:
            self._climb()

    @cython.final
    cdef void _shadow_access(self, Py_hash_t h, bint hit) noexcept:
        """As the twin's shadow in ``_WTinyLFUPolicy.access``: an exact LRU of hashes."""
        cdef uint64_t mask = self.sh_tmask
        cdef size_t i = <size_t>((_spread(h) >> 16) & mask)
        cdef size_t j, home
        cdef int32_t e, f, p, nx
        while True:
            e = self.sh_table[i]
            if e == EMPTY or self.sh_hash[e] == h:
                break
            i = (i + 1) & mask
        if e != EMPTY:
            if e != self.sh_head:  # unlink, then make it the newest
                p = self.sh_prev[e]
                nx = self.sh_next[e]
                self.sh_next[p] = nx
                self.sh_prev[nx] = p
                self._shadow_link(e)
            if self.full and not hit:
                self.shadow_lru += 1
            return
        if self.sh_n < self.sh_cap:
            e = <int32_t>self.sh_n
            self.sh_n += 1
        else:  # reuse the oldest slot: out of the table (backward shift), out of the list
            e = self.sh_prev[self.sh_head]
            j = <size_t>((_spread(self.sh_hash[e]) >> 16) & mask)
            while self.sh_table[j] != e:
                j = (j + 1) & mask
            i = j
            while True:
                j = (j + 1) & mask
                f = self.sh_table[j]
                if f == EMPTY:
                    break
                home = <size_t>((_spread(self.sh_hash[f]) >> 16) & mask)
                if ((j - home) & mask) >= ((j - i) & mask):
                    self.sh_table[i] = f
                    i = j
            self.sh_table[i] = EMPTY
            if self.sh_n == 1:
                self.sh_head = EMPTY
            else:
                p = self.sh_prev[e]
                nx = self.sh_next[e]
                self.sh_next[p] = nx
                self.sh_prev[nx] = p
            i = <size_t>((_spread(h) >> 16) & mask)
            while self.sh_table[i] != EMPTY:
                i = (i + 1) & mask
        self.sh_hash[e] = h
        self.sh_table[i] = e
        self._shadow_link(e)
        if self.full and hit:
            self.shadow_ours += 1

    @cython.final
    cdef inline void _shadow_link(self, int32_t e) noexcept:
        """Makes slot ``e`` (out of the list) the shadow's newest."""
        cdef int32_t head = self.sh_head
        cdef int32_t tail
        if head == EMPTY:
            self.sh_prev[e] = e
            self.sh_next[e] = e
        else:
            tail = self.sh_prev[head]
            self.sh_next[e] = head
            self.sh_prev[e] = tail
            self.sh_next[tail] = e
            self.sh_prev[head] = e
        self.sh_head = e

    @cython.final
    cdef void _climb(self) noexcept:
        """As the twin's ``_WTinyLFUPolicy._climb``, operation for operation."""
        cdef Py_ssize_t n = self.sample_hits + self.sample_misses
        cdef double rate = <double>self.sample_hits / <double>n
        cdef double change, noise, amount, shadow_noise
        cdef Py_ssize_t window, top, gap
        self.sample_hits = self.sample_misses = 0
        # the shadow against the cache on the same sampled reads (see the twin)
        gap = self.shadow_lru - self.shadow_ours
        shadow_noise = 2.0 * sqrt(<double>(self.shadow_lru + self.shadow_ours))
        self.shadow_lru = self.shadow_ours = 0
        top = self._count - 1 if self._count > 1 else 1
        if (<double>gap > shadow_noise and self.window_cap < top
                and (self.previous_rate >= 0.0
                     or <double>gap > FIRST_GAP * <double>n / <double>(self.rate_mask + 1))):
            self.window_cap = top
            self.protected_cap = <Py_ssize_t>(<double>(self._count - top) * 0.8)
            self.step = STEP * <double>self._count
            self.previous_rate = -1.0
            return
        if self.previous_rate < 0.0:
            self.previous_rate = rate
            return
        change = rate - self.previous_rate
        noise = 2.0 * sqrt(2.0 * rate * (1.0 - rate) / <double>n)
        amount = self.step if change >= -noise else -self.step
        window = self.window_cap + <Py_ssize_t>amount
        if window < 1:
            window = 1
        if window > top:
            window = top
        if (change if change >= 0 else -change) >= RESTART:
            self.step = STEP * <double>self._count * (1 if amount >= 0 else -1)
        elif change > noise and window != self.window_cap:
            self.step = 2.0 * amount
            if (self.step if self.step >= 0 else -self.step) > 0.5 * <double>self._count:
                self.step = 0.5 * <double>self._count * (1 if amount >= 0 else -1)
        else:
            self.step = DECAY * amount
        if <double>(-gap) > shadow_noise and window > self.window_cap:
            window = self.window_cap  # frequency pays: no bigger window
            self.step = -self.step if self.step > 0 else self.step
        self.previous_rate = rate
        if window != self.window_cap:
            self.window_cap = window
            self.protected_cap = <Py_ssize_t>(<double>(self._count - window) * 0.8)

    # -- lookup -------------------------------------------------------------------------------

    @cython.final
    cdef inline Py_ssize_t _find(self, object key, Py_hash_t h, fastlru_cs* cs,
                                 PyObject** hold) except -2:
        cdef int32_t e = self.table[_home(h, self.shift)]
        if e == EMPTY:
            return -1
        if self.entries[e].key == <PyObject*>key:
            return e
        return self._lookup(key, h, cs, hold)

    @cython.final
    cdef Py_ssize_t _lookup(self, object key, Py_hash_t h, fastlru_cs* cs,
                            PyObject** hold) except -2:
        """As ``_lru_c.LRU._lookup``: the section is ended while a key's ``__eq__`` runs."""
        cdef size_t i
        cdef size_t version
        cdef int32_t e
        cdef Entry* ep
        cdef PyObject* k
        cdef PyObject* old
        cdef int restarts = 0
        cdef int equal
        while True:
            version = self.version
            i = _home(h, self.shift)
            while True:
                e = self.table[i]
                if e == EMPTY:
                    return -1
                ep = &self.entries[e]
                if ep.key == <PyObject*>key:
                    return e
                if ep.hash == h:
                    k = ep.key
                    _incref(k)
                    fastlru_cs_end(cs)
                    old = hold[0]
                    hold[0] = k
                    _xdecref(old)
                    if restarts > RESTART_LIMIT:
                        hold[0] = NULL
                        _decref(k)
                        raise RuntimeError("Cache mutated during key comparison")
                    equal = _richcmp_bool(k, <PyObject*>key, Py_EQ)
                    if equal < 0:
                        hold[0] = NULL
                        _decref(k)
                        return -2
                    fastlru_cs_begin(cs, self)
                    if self.version != version:
                        if equal and e < self.fill and self.entries[e].key == k:
                            return e
                        restarts += 1
                        break
                    if equal:
                        return e
                i = (i + 1) & self.tmask

    @cython.final
    cdef void _detach(self, int32_t e, Dropped* dropped) noexcept:
        """Frees entry ``e``, already out of its queue; its references go to ``dropped``."""
        cdef Entry* ep = &self.entries[e]
        if self.bits[e]:
            fastlru_ft_record(self.ft, ep.key)
        self._table_remove(e)
        dropped.items[dropped.n] = ep.key
        dropped.items[dropped.n + 1] = ep.value
        dropped.n += 2
        ep.key = NULL
        ep.value = NULL
        ep.next = self.free_head
        self.queue[e] = Q_FREE
        self.free_head = e
        self.size -= 1
        if self.timed:
            self._unstamp(e)
        if self.weighted:
            self.total_weight -= self.weights[e]
            self.weights[e] = 0
        self.version += 1

    # -- store order, only with a ttl (section held, no Python code): as _lru_c's ------------

    @cython.final
    cdef inline void _stamp(self, int32_t e, double expires) noexcept:
        """Gives ``e`` its expiry time and makes it the newest in store order."""
        cdef Stamp* st = self.stamps
        cdef int32_t oldest = self.oldest
        cdef int32_t newest
        st[e].expires = expires
        if oldest == EMPTY:
            st[e].older = e
            st[e].newer = e
            self.oldest = e
        else:
            newest = st[oldest].older
            st[e].newer = oldest
            st[e].older = newest
            st[newest].newer = e
            st[oldest].older = e

    @cython.final
    cdef inline void _unstamp(self, int32_t e) noexcept:
        cdef Stamp* st = self.stamps
        cdef int32_t nxt = st[e].newer
        cdef int32_t prv
        if nxt == e:
            self.oldest = EMPTY
            return
        prv = st[e].older
        st[prv].newer = nxt
        st[nxt].older = prv
        if self.oldest == e:
            self.oldest = nxt

    @cython.final
    cdef inline bint _expired(self, Py_ssize_t e, double now) noexcept:
        return self.timed and self.stamps[e].expires <= now

    @cython.final
    cdef int _expire(self, double now, Dropped* dropped) except -1:
        """Reclaims (as evictions), oldest stored first, the entries expired at ``now``."""
        cdef Py_ssize_t n = 0, i
        cdef int32_t e = self.oldest
        if not self.timed:
            return 0
        while e != EMPTY and n < self.size and self.stamps[e].expires <= now:
            n += 1
            e = self.stamps[e].newer
        if n == 0:
            return 0
        if _dropped_room(dropped, 2 * n) < 0:
            raise MemoryError()
        for i in range(n):
            e = self.oldest
            self._unfile(e)
            self._detach(e, dropped)
            self.evictions += 1
        return 0

    @cython.final
    cdef double _now(self) except? -1.0:
        """The timer's time (Python code: called before the section)."""
        t = self._timer()
        if type(t) is float and t == t:
            return <double>t
        return check_time(t)

    @cython.final
    cdef int _expire_now(self) except -1:
        """Reclaims the expired entries (reported to on_evict), if the cache has a ttl."""
        cdef fastlru_cs cs
        cdef Dropped dropped
        cdef double now
        if not self.timed:
            return 0
        now = self._now()
        _dropped_init(&dropped)
        fastlru_cs_begin(&cs, self)
        try:
            self._expire(now, &dropped)
        finally:
            fastlru_cs_end(&cs)
        self._release(&dropped, True)
        return 0

    @cython.final
    cdef inline bint _overweight(self, Py_ssize_t extra) noexcept:
        """The entries' weight plus ``extra`` is above maxweight (every term in
        [0, PY_SSIZE_T_MAX] or its negation: nothing overflows, as ``_lru_c``)."""
        return self.weighted and self.total_weight - self._maxweight > -extra

    @cython.final
    cdef int _evict_for(self, Py_ssize_t w, Dropped* dropped) noexcept:
        """Evicts the policy's victims until ``w`` more fits under maxweight; -1 (no exception
        set, the cache consistent) if ``dropped`` could not grow."""
        while self._overweight(w):
            if _dropped_room(dropped, 2) < 0:
                return -1
            self._detach(self._victim(), dropped)
            self.evictions += 1
        return 0

    @cython.final
    cdef Py_ssize_t _weigh(self, object value) except -1:
        if self.getsizeof is None:
            return check_weight(1, self._maxweight)
        return check_weight(self.getsizeof(value), self._maxweight)

    @cython.final
    cdef void _release(self, Dropped* dropped, bint evicted) noexcept:
        cdef object on_evict = self.on_evict
        cdef PyObject* result
        cdef Py_ssize_t i
        if evicted and on_evict is not None:
            for i in range(0, dropped.n, 2):
                result = _call2(<PyObject*>on_evict, dropped.items[i], dropped.items[i + 1], NULL)
                if result == NULL:
                    PyErr_WriteUnraisable(on_evict)
                else:
                    _decref(result)
        _dropped_release(dropped)

    # -- mapping ------------------------------------------------------------------------------

    def __getitem__(self, key):
        # _get's body, raising KeyError (a call and a sentinel less on the hottest path, as LRU)
        cdef PyObject* found = fastlru_ft_get(self.ft, <PyObject*>key)
        cdef Py_hash_t h
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        cdef PyObject* publish = NULL
        if found != NULL:  # free-threaded, lock-free hit (before hash(): nothing shared written)
            return fastlru_ft_steal(found)
        h = hash(key)
        if self.timed:
            value = self._get_timed(key, h, _MISSING)
            if value is _MISSING:
                raise KeyError(key)
            return value
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e < 0:
            self._read_miss(h)
            fastlru_cs_end(&cs)
            _xdecref(hold)
            raise KeyError(key)
        self._read_hit(h, <int32_t>e)
        value = <object>self.entries[e].value
        if fastlru_ft_on(self.ft):
            publish = self._ft_want(<int32_t>e, key)
        fastlru_cs_end(&cs)
        _xdecref(hold)
        if publish != NULL:
            self._ft_publish(<int32_t>e, publish, key)
        return value

    def get(self, key, default=None):
        """The value of ``key`` (a read the policy records), or ``default``."""
        return self._get(key, default)

    @cython.final
    cdef inline void _read_hit(self, Py_hash_t h, int32_t e) noexcept:
        """What a read that found ``e`` records (every read path calls this one)."""
        self.hits += 1
        if self.kind >= P_WTINYLFU:  # W-TinyLFU, TinyLFU: the sketch, then the segments
            self._access(h, True)
            self._slru_hit(e)
        else:
            self._hit(e)

    @cython.final
    cdef inline void _read_miss(self, Py_hash_t h) noexcept:
        """What a read that found nothing records."""
        self.misses += 1
        if self.kind >= P_WTINYLFU:
            self._access(h, False)

    @cython.final
    cdef inline object _get(self, object key, object default):
        cdef PyObject* found = fastlru_ft_get(self.ft, <PyObject*>key)
        cdef Py_hash_t h
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        cdef PyObject* publish = NULL
        if found != NULL:  # free-threaded, lock-free hit: no write to the cache (_ft_read.h)
            return fastlru_ft_steal(found)
        h = hash(key)
        if self.timed:
            return self._get_timed(key, h, default)
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e < 0:
            self._read_miss(h)
            value = default
        else:
            self._read_hit(h, <int32_t>e)
            value = <object>self.entries[e].value
            if fastlru_ft_on(self.ft):
                publish = self._ft_want(<int32_t>e, key)
        fastlru_cs_end(&cs)
        _xdecref(hold)
        if publish != NULL:
            self._ft_publish(<int32_t>e, publish, key)
        return value

    @cython.final
    cdef object _get_timed(self, object key, Py_hash_t h, object default):
        """``_get`` with a ttl: an expired entry is a miss, reclaimed (as an eviction) at once."""
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        cdef double now = self._now()
        cdef Dropped expired
        _dropped_init(&expired)
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0 and self._expired(e, now):
            self._unfile(<int32_t>e)
            self._detach(<int32_t>e, &expired)  # two references: the inline room suffices
            self.evictions += 1
            e = -1
        if e < 0:
            self._read_miss(h)
            value = default
        else:
            self._read_hit(h, <int32_t>e)
            value = <object>self.entries[e].value
        fastlru_cs_end(&cs)
        _xdecref(hold)
        if expired.n:
            self._release(&expired, True)
        return value

    @cython.final
    cdef inline PyObject* _ft_want(self, int32_t e, object key) noexcept:
        """Section held, hit on ``e`` by ``key``: the entry's key (a new reference) when the hit
        may put it in the read index (free-threaded builds), else NULL."""
        cdef PyObject* k = self.entries[e].key
        if not (fastlru_ft_indexable(k) and fastlru_ft_indexable(<PyObject*>key)):
            return NULL  # both exact built-ins: equal means equal for the index as for the arena
        _incref(k)
        return k

    @cython.final
    cdef void _ft_publish(self, int32_t e, PyObject* k, object key):
        """Section not held (free-threaded builds): applies pending records, then puts ``key``
        -> the value in this thread's read index if entry ``e`` still holds ``k`` (a reference
        this call releases) with its visited bit set."""
        cdef fastlru_cs cs
        cdef PyObject* value = NULL
        fastlru_ft_drain(self.ft, <PyObject*>self)
        if fastlru_ft_lock(self.ft):
            fastlru_cs_begin(&cs, self)
            if e < self.fill and self.entries[e].key == k and self.bits[e]:
                value = self.entries[e].value
                _incref(value)
            fastlru_cs_end(&cs)
            if value == NULL:
                fastlru_ft_unlock(self.ft)
            else:
                fastlru_ft_publish(self.ft, <PyObject*>key, value)  # releases the lock
                _decref(value)
        _decref(k)

    def peek(self, key, default=None):
        """The value of ``key`` without counting or recording a read, or ``default``."""
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef double now = 0
        if self.timed:
            now = self._now()
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0 and self._expired(e, now):
            e = -1  # expired: absent (reclaimed by a later get or store)
        value = default if e < 0 else <object>self.entries[e].value
        fastlru_cs_end(&cs)
        _xdecref(hold)
        return value

    def __contains__(self, key):
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef double now = 0
        if self.timed:
            now = self._now()
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0 and self._expired(e, now):
            e = -1
        fastlru_cs_end(&cs)
        _xdecref(hold)
        return e >= 0

    def __setitem__(self, key, value):
        self._store(key, value, False)

    def setdefault(self, key, default=None):
        """The value of ``key``; if absent, stores and returns ``default``."""
        return self._store(key, default, True)

    @cython.final
    cdef object _store(self, object key, object value, bint keep):
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef PyObject* replaced = NULL
        cdef Py_ssize_t e
        cdef int32_t t
        cdef int32_t out[2]
        cdef int n, i
        cdef Entry* ep
        cdef Dropped evicted
        cdef object result = value
        cdef Py_ssize_t w = 1, old_w
        cdef bint failed = False
        cdef double now = 0
        if self.timed:
            now = self._now()
        if self.weighted:
            if keep:
                # setdefault of a present key stores nothing, so weighs nothing (as LRU)
                fastlru_cs_begin(&cs, self)
                e = self._find(key, h, &cs, &hold)
                if e >= 0 and self._expired(e, now):
                    e = -1  # expired: stored anew below
                if e >= 0:
                    self._hit(<int32_t>e)
                    self.version += 1
                    result = <object>self.entries[e].value
                fastlru_cs_end(&cs)
                _xdecref(hold)
                hold = NULL
                if e >= 0:
                    return result
            w = self._weigh(value)  # user code: before the section, the cache untouched
        _dropped_init(&evicted)
        fastlru_cs_begin(&cs, self)
        if self.timed:
            try:
                self._expire(now, &evicted)  # expired entries go before any live one
            except MemoryError:
                fastlru_cs_end(&cs)
                raise
            try:
                e = self._find(key, h, &cs, &hold)  # raising, it ended the section
            except BaseException:
                self._release(&evicted, True)  # the expired entries it reclaimed: reported, freed
                raise
        else:
            e = self._find(key, h, &cs, &hold)
        if e >= 0:
            ep = &self.entries[e]
            if self._expired(e, now):
                keep = False  # (a timer that went back): its value is gone, store ours
            if keep:
                result = <object>ep.value
            else:
                if self.bits[e]:
                    fastlru_ft_record(self.ft, ep.key)  # its value changes
                if self.timed:
                    self._unstamp(<int32_t>e)
                    self._stamp(<int32_t>e, now + self._ttl)
                if self.weighted:
                    old_w = self.weights[e]
                    self.total_weight -= old_w
                    self.weights[e] = 0
                    if self._overweight(w):
                        # out of the policy while others make room: never its own victim
                        self._unfile(<int32_t>e)
                        failed = self._evict_for(w, &evicted) < 0
                        self._file(<int32_t>e, out)  # size <= count: evicts nothing
                    if failed:
                        w = old_w  # the old value stays, with its weight (it fit before)
                    self.weights[e] = w
                    self.total_weight += w
                    ep = &self.entries[e]
                if not failed:
                    replaced = ep.value
                    _incref(<PyObject*>value)
                    ep.value = <PyObject*>value
            self._hit(<int32_t>e)  # a write is an access, as in LRU
            self.version += 1
            if failed:
                fastlru_cs_end(&cs)
                _xdecref(hold)
                self._release(&evicted, True)
                raise MemoryError()
        else:
            if self._overweight(w):
                failed = self._evict_for(w, &evicted) < 0
            if not failed and evicted.n + 4 > evicted.cap:
                failed = _dropped_room(&evicted, 4) < 0  # what _file may evict
            if not failed and not self._has_room():
                try:  # (saving the exception state costs: only when it may allocate)
                    self._reserve()
                except MemoryError:
                    failed = True
            if failed:
                fastlru_cs_end(&cs)
                _xdecref(hold)
                self._release(&evicted, True)
                raise MemoryError()
            t = self.free_head
            if t != EMPTY:
                self.free_head = self.entries[t].next
            else:
                t = <int32_t>self.fill
                self.fill += 1
            ep = &self.entries[t]
            _incref(<PyObject*>key)
            _incref(<PyObject*>value)
            ep.key = <PyObject*>key
            ep.value = <PyObject*>value
            ep.hash = h
            self._table_insert(t, h)
            if self.weighted:
                self.weights[t] = w
                self.total_weight += w
            if self.timed:
                self._stamp(t, now + self._ttl)
            self.size += 1
            self.version += 1
            n = self._file(t, out)
            for i in range(n):
                self._detach(out[i], &evicted)
                self.evictions += 1
        fastlru_cs_end(&cs)
        fastlru_ft_drain(self.ft, <PyObject*>self)
        _xdecref(hold)
        _xdecref(replaced)
        if evicted.n:
            self._release(&evicted, True)
        return result

    def __delitem__(self, key):
        self._pop(key, None, True)

    def pop(self, key, default=_MISSING, /):
        """Removes ``key`` and returns its value; ``default`` if given and ``key`` is absent."""
        return self._pop(key, default, default is _MISSING)

    @cython.final
    cdef object _pop(self, object key, object default, bint required):
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef Dropped dropped
        cdef double now = 0
        cdef bint expired = False
        if self.timed:
            now = self._now()
        _dropped_init(&dropped)
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0:
            expired = self._expired(e, now)
            if expired:
                self.evictions += 1
            self._unfile(<int32_t>e)
            self._detach(<int32_t>e, &dropped)
        fastlru_cs_end(&cs)
        fastlru_ft_drain(self.ft, <PyObject*>self)
        _xdecref(hold)
        if expired:
            self._release(&dropped, True)  # reclaimed and reported, not popped
            e = -1
        if e < 0:
            if required:
                raise KeyError(key)
            return default
        value = <object>dropped.items[1]
        _dropped_release(&dropped)
        return value

    def popitem(self):
        """Removes and returns the entry the policy would evict next."""
        cdef fastlru_cs cs
        cdef Dropped dropped
        cdef Dropped expired
        cdef double now = 0
        if self.timed:
            now = self._now()
        _dropped_init(&dropped)
        _dropped_init(&expired)
        fastlru_cs_begin(&cs, self)
        try:
            self._expire(now, &expired)
            if self.size:
                self._detach(self._victim(), &dropped)
        finally:
            fastlru_cs_end(&cs)
        fastlru_ft_drain(self.ft, <PyObject*>self)
        self._release(&expired, True)
        if not dropped.n:
            raise KeyError("popitem(): Cache is empty")
        item = (<object>dropped.items[0], <object>dropped.items[1])
        _dropped_release(&dropped)
        return item

    def clear(self):
        """Removes every entry (and forgets the policy's history: ghost, sketch, window)."""
        self._clear()

    @cython.final
    cdef int _clear(self) except -1:
        cdef fastlru_cs cs
        cdef int32_t* table = self._new_table(MIN_TABLE_BITS)
        cdef Entry* entries
        cdef Py_ssize_t fill
        fastlru_cs_begin(&cs, self)
        try:
            self._setup_policy(self.kind, self._count)
        except MemoryError:
            fastlru_cs_end(&cs)
            PyMem_Free(table)
            raise
        entries = self.entries
        fill = self.fill
        PyMem_Free(self.table)
        self.table = table
        self.tmask = (1 << MIN_TABLE_BITS) - 1
        self.shift = 64 - MIN_TABLE_BITS
        self.entries = NULL
        PyMem_Free(self.queue)
        PyMem_Free(self.bits)
        self.queue = NULL
        self.bits = NULL
        PyMem_Free(self.weights)
        self.weights = NULL
        self.total_weight = 0
        PyMem_Free(self.stamps)
        self.stamps = NULL
        self.oldest = EMPTY
        self.alloc = 0
        self.fill = 0
        self.free_head = EMPTY
        self.size = 0
        self.version += 1
        fastlru_ft_record_clear(self.ft)
        fastlru_cs_end(&cs)
        fastlru_ft_drain(self.ft, <PyObject*>self)
        self._free_entries(entries, fill)
        return 0

    @cython.final
    cdef void _free_entries(self, Entry* entries, Py_ssize_t fill) noexcept:
        cdef Py_ssize_t i
        if entries == NULL:
            return
        for i in range(fill):
            _xdecref(entries[i].key)
            _xdecref(entries[i].value)
        PyMem_Free(entries)

    def update(self, other=(), /, **kwargs):
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
            self[key] = value

    def __len__(self):
        self._expire_now()
        return self.size

    @property
    def count(self):
        return self._count

    @count.setter
    def count(self, count):
        """A new bound: the policy takes its shares of it, then its victims are evicted (and
        reported to on_evict) until at most ``count`` entries remain, as ``LRU.count``."""
        cdef Py_ssize_t c = check_count(count)
        cdef fastlru_cs cs
        cdef Dropped evicted
        self._expire_now()
        _dropped_init(&evicted)
        fastlru_cs_begin(&cs, self)
        if self.size > c and _dropped_room(&evicted, 2 * (self.size - c)) < 0:
            fastlru_cs_end(&cs)
            raise MemoryError()  # nothing changed yet
        if c != self._count:  # the same bound keeps the policy's state (its climber)
            self._count = c
            self._resize_policy(c)
        while self.size > c:
            self._detach(self._victim(), &evicted)
            self.evictions += 1
        if self.fill // 2 > c and self.fill > 64:
            self._compact()  # as LRU's; out of memory it leaves the arena as it was
        fastlru_cs_end(&cs)
        fastlru_ft_drain(self.ft, <PyObject*>self)
        self._release(&evicted, True)

    @count.deleter
    def count(self):
        raise AttributeError("count cannot be deleted")

    @property
    def policy(self):
        return POLICIES[self.kind]

    @property
    def maxweight(self):
        """The weight bound, or None."""
        return self._maxweight if self.weighted else None

    @property
    def weight(self):
        """The total weight of the entries (their number without a maxweight)."""
        self._expire_now()
        return self.total_weight if self.weighted else self.size

    @property
    def ttl(self):
        """Seconds an entry lives after it was stored, or None."""
        return self._ttl if self.timed else None

    @property
    def timer(self):
        return self._timer

    def info(self):
        cdef fastlru_cs cs
        self._expire_now()
        fastlru_cs_begin(&cs, self)
        info = (self.hits + fastlru_ft_hits(self.ft), self.misses, self.evictions, self.size,
                self._count)
        fastlru_cs_end(&cs)
        return _common.CacheInfo(*info)

    def clear_stats(self):
        """Resets the hits, misses and evictions counters to zero."""
        cdef fastlru_cs cs
        fastlru_cs_begin(&cs, self)
        self.hits = self.misses = self.evictions = 0
        fastlru_ft_clear_hits(self.ft)
        fastlru_cs_end(&cs)

    # -- views ----------------------------------------------------------------------------

    @cython.final
    cdef int _queue_order(self, int* qs) noexcept:
        """The queues in the twin's ``order()``: small/window first. Returns how many."""
        if self.kind == P_S3FIFO:
            qs[0] = Q_SMALL
            qs[1] = Q_MAIN
            return 2
        if self.kind >= P_WTINYLFU:
            qs[0] = Q_WINDOW
            qs[1] = Q_PROBATION
            qs[2] = Q_PROTECTED
            return 3
        qs[0] = Q_MAIN
        return 1

    @cython.final
    cdef int _compact(self) noexcept:
        """Moves the live entries into a new arena of just their number, numbered in the
        twin's ``order()`` (as its ``_compact``), and rebuilds the table at their size (section
        held, no Python code). -1, the cache as it was, if memory ran out."""
        cdef Py_ssize_t n = self.size, fill = self.fill, alloc, j = 0, i
        cdef int qs[3]
        cdef int nq = self._queue_order(qs), k, bits = MIN_TABLE_BITS
        cdef int32_t e, h
        cdef int32_t* moved
        cdef Entry* ents
        cdef uint8_t* qu
        cdef uint8_t* bi
        cdef Py_ssize_t* we = NULL
        cdef Stamp* st = NULL
        cdef int32_t* table
        alloc = n if n > 0 else 1
        while ((<size_t>1) << bits) <= <size_t>(2 * n):
            bits += 1
        moved = <int32_t*>PyMem_Malloc(fill * sizeof(int32_t))
        ents = <Entry*>PyMem_Malloc(alloc * sizeof(Entry))
        qu = <uint8_t*>PyMem_Malloc(alloc)
        bi = <uint8_t*>PyMem_Malloc(alloc)
        table = <int32_t*>PyMem_Malloc(((<size_t>1) << bits) * sizeof(int32_t))
        if self.weighted:
            we = <Py_ssize_t*>PyMem_Malloc(alloc * sizeof(Py_ssize_t))
        if self.timed:
            st = <Stamp*>PyMem_Malloc(alloc * sizeof(Stamp))
        if (moved == NULL or ents == NULL or qu == NULL or bi == NULL or table == NULL
                or (self.weighted and we == NULL) or (self.timed and st == NULL)):
            PyMem_Free(moved)
            PyMem_Free(ents)
            PyMem_Free(qu)
            PyMem_Free(bi)
            PyMem_Free(table)
            PyMem_Free(we)
            PyMem_Free(st)
            return -1
        for k in range(nq):  # number the entries, queue by queue, newest first
            h = self.heads[qs[k]]
            if h == EMPTY:
                continue
            e = h
            while True:
                moved[e] = <int32_t>j
                ents[j].key = self.entries[e].key  # the references move: no incref
                ents[j].value = self.entries[e].value
                ents[j].hash = self.entries[e].hash
                qu[j] = self.queue[e]
                bi[j] = self.bits[e]
                if we != NULL:
                    we[j] = self.weights[e]
                if st != NULL:
                    st[j].expires = self.stamps[e].expires
                j += 1
                e = self.entries[e].next
                if e == h:
                    break
        for k in range(nq):  # then the links, in the new numbers
            h = self.heads[qs[k]]
            if h == EMPTY:
                continue
            e = h
            while True:
                i = moved[e]
                ents[i].prev = moved[self.entries[e].prev]
                ents[i].next = moved[self.entries[e].next]
                if st != NULL:
                    st[i].older = moved[self.stamps[e].older]
                    st[i].newer = moved[self.stamps[e].newer]
                e = self.entries[e].next
                if e == h:
                    break
            self.heads[qs[k]] = moved[h]
        if self.hand != EMPTY:
            self.hand = moved[self.hand]
        if self.oldest != EMPTY:
            self.oldest = moved[self.oldest]
        PyMem_Free(moved)
        PyMem_Free(self.entries)
        PyMem_Free(self.queue)
        PyMem_Free(self.bits)
        PyMem_Free(self.weights)
        PyMem_Free(self.stamps)
        PyMem_Free(self.table)
        self.entries = ents
        self.queue = qu
        self.bits = bi
        self.weights = we
        self.stamps = st
        self.alloc = alloc
        self.fill = n
        self.free_head = EMPTY
        self.table = table
        self.tmask = ((<size_t>1) << bits) - 1
        self.shift = 64 - bits
        for i in range(<Py_ssize_t>self.tmask + 1):
            table[i] = EMPTY
        for i in range(n):
            self._table_insert(<int32_t>i, ents[i].hash)
        self.version += 1
        return 0

    @cython.final
    cdef list _order(self, size_t* version=NULL):
        """Entries in the twin's order: per queue (small/window first), newest first (and the
        version they were listed at, if asked)."""
        cdef list out = []
        cdef int32_t e
        cdef fastlru_cs cs
        cdef int qs[3]
        cdef int nq, j
        if self.kind == P_S3FIFO:
            qs[0] = Q_SMALL
            qs[1] = Q_MAIN
            nq = 2
        elif self.kind >= P_WTINYLFU:
            qs[0] = Q_WINDOW
            qs[1] = Q_PROBATION
            qs[2] = Q_PROTECTED
            nq = 3
        else:
            qs[0] = Q_MAIN
            nq = 1
        self._expire_now()
        # Snapshot the entry numbers first: building tuples allocates (the GC may run Python).
        fastlru_cs_begin(&cs, self)
        refs = []
        try:
            for j in range(nq):
                e = self.heads[qs[j]]
                if e == EMPTY:
                    continue
                while True:
                    refs.append(<object>self.entries[e].key)
                    refs.append(<object>self.entries[e].value)
                    e = self.entries[e].next
                    if e == self.heads[qs[j]]:
                        break
            if version != NULL:
                version[0] = self.version
        finally:
            fastlru_cs_end(&cs)
        for i in range(0, len(refs), 2):
            out.append((refs[i], refs[i + 1]))
        return out

    def items(self):
        return self._order()

    def keys(self):
        return [k for k, _ in self._order()]

    def values(self):
        return [v for _, v in self._order()]

    @cython.final
    cdef _iterator(self, bint forward):
        cdef size_t version = 0
        cdef list keys = [k for k, _ in self._order(&version)]
        cdef _Iterator it = _Iterator.__new__(_Iterator)
        if not forward:
            keys.reverse()
        it.cache = self
        it.keys = keys
        it.version = version
        return it

    def __iter__(self):
        """The keys as ``keys()`` lists them; raises RuntimeError once the cache changed (a
        store, a removal, an eviction: not a read), as ``LRU``'s iterator."""
        return self._iterator(True)

    def __reversed__(self):
        """The keys in the reverse of ``keys()`` (for ``"lru"``: least recent first)."""
        return self._iterator(False)

    # -- whole-object protocols ------------------------------------------------------------

    def _kwargs(self):
        return cache_kwargs(POLICIES[self.kind], self.on_evict, self.maxweight, self.getsizeof,
                            self.ttl, self._timer)

    def copy(self):
        """A new cache of the same type, count, policy and options holding the same entries
        (not the policy's history: a ghost, a sketch, visited bits)."""
        return rebuild_cache(type(self), Cache, self._count, self.items()[::-1], self._kwargs())

    def __copy__(self):
        return copy_cache(self, Cache, self._count, self._kwargs())

    def __reduce__(self):
        return reduce_cache(self, Cache, self._count, self._kwargs())

    def __eq__(self, other):
        if isinstance(other, (Cache, Mapping)):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        if Py_ReprEnter(self):
            return "..."
        try:
            return cache_repr(self, self._count, self.items(), self._kwargs())
        finally:
            Py_ReprLeave(self)

    @classmethod
    def __class_getitem__(cls, item):
        return GenericAlias(cls, item)

    def _sketch(self):
        """Debug: the sketch (W-TinyLFU, TinyLFU) as the twin's ``Cache._sketch`` shows it, or None."""
        cdef fastlru_cs cs
        cdef bytearray counters, door
        cdef Py_ssize_t i, n
        if self.kind < P_WTINYLFU:
            return None
        n = self.width
        counters = bytearray(4 * n)
        door = bytearray(n)
        fastlru_cs_begin(&cs, self)
        for i in range(4 * n):
            counters[i] = (self.sketch[i >> 4] >> ((i & 15) * 4)) & 15
        for i in range(n):
            door[i] = (self.door[i >> 3] >> (i & 7)) & 1
        additions = self.additions
        fastlru_cs_end(&cs)
        return bytes(counters), bytes(door), additions

    def _check(self):
        """Debug: asserts that the table, the queues and the counters agree."""
        cdef int32_t e
        cdef Py_ssize_t n, total = 0
        for q in range(1, NQUEUES):
            n = 0
            e = self.heads[q]
            if e != EMPTY:
                while True:
                    n += 1
                    assert n <= self.size, "queue longer than size"
                    assert self.entries[self.entries[e].next].prev == e, "broken back link"
                    assert self.queue[e] == q, "entry in the wrong queue"
                    assert self.entries[e].key != NULL, "free entry queued"
                    e = self.entries[e].next
                    if e == self.heads[q]:
                        break
            assert n == self.lsize[q], "queue size drifted"
            total += n
        assert total == self.size, "queues and size disagree"
        assert self.size <= self._count, "size above count"
        n = 0
        for i in range(self.tmask + 1):
            if self.table[i] != EMPTY:
                n += 1
        assert n == self.size, "table and queues disagree"
        for i in range(FT_STRIPES):  # free-threaded: each stripe's read index is in the arena
            if fastlru_ft_index(self.ft, i) != NULL and fastlru_ft_pending(self.ft) == 0:
                for k, v in list((<object>fastlru_ft_index(self.ft, i)).items()):
                    assert self.peek(k, _MISSING) is v, "read index and arena disagree"
        if self.weighted:
            total = 0
            for i in range(self.fill):
                if self.entries[i].key != NULL:
                    total += self.weights[i]
                else:
                    assert self.weights[i] == 0, "free entry weighs"
            assert total == self.total_weight, "weight total drifted"
            assert self.total_weight <= self._maxweight, "weight above maxweight"
        if self.timed:
            n = 0
            e = self.oldest
            while e != EMPTY:
                n += 1
                assert n <= self.size, "store order longer than size"
                assert self.entries[e].key != NULL, "free entry in the store order"
                assert self.stamps[self.stamps[e].newer].older == e, "broken store-order link"
                e = self.stamps[e].newer
                if e == self.oldest:
                    break
            assert n == self.size, "store order and size disagree"


@cython.final
cdef class _Iterator:
    """A cache's keys, listed when iteration began; raises RuntimeError once the cache changed.
    As dict's: once exhausted it stays exhausted (and lets go of the cache); once failed it
    keeps failing."""

    cdef Cache cache              # None once exhausted
    cdef list keys
    cdef Py_ssize_t i
    cdef size_t version

    def __iter__(self):
        return self

    def __next__(self):
        cdef Cache cache = self.cache
        cdef fastlru_cs cs
        cdef bint changed
        if cache is None:
            raise StopIteration
        fastlru_cs_begin(&cs, cache)
        changed = cache.version != self.version
        fastlru_cs_end(&cs)
        if changed:
            raise RuntimeError("Cache mutated during iteration")
        if self.i >= len(self.keys):
            self.cache = None
            self.keys = None
            raise StopIteration
        key = self.keys[self.i]
        self.i += 1
        return key


# The arena holds Python references in C memory: teach the GC to see and break cycles there.
cdef traverseproc _base_traverse = (<_TypeSlots*>Cache).tp_traverse
cdef inquiry _base_clear = (<_TypeSlots*>Cache).tp_clear


cdef int _cache_traverse(PyObject* o, visitproc visit, void* arg) noexcept:
    cdef Cache self = <Cache>o
    cdef int r
    cdef Py_ssize_t i
    if _base_traverse != NULL:
        r = _base_traverse(o, visit, arg)
        if r:
            return r
    r = fastlru_ft_traverse(self.ft, visit, arg)
    if r:
        return r
    for i in range(self.fill):
        if self.entries[i].key != NULL:
            r = visit(self.entries[i].key, arg)
            if r:
                return r
            r = visit(self.entries[i].value, arg)
            if r:
                return r
    return 0


cdef int _cache_clear(PyObject* o) noexcept:
    cdef Cache self = <Cache>o
    try:
        self._clear()
    except BaseException:
        PyErr_WriteUnraisable(self)
    fastlru_ft_gc_clear(self.ft)
    if _base_clear != NULL:
        return _base_clear(o)
    return 0


(<_TypeSlots*>Cache).tp_traverse = <traverseproc>_cache_traverse
(<_TypeSlots*>Cache).tp_clear = <inquiry>_cache_clear

MutableMapping.register(Cache)
CacheType.register(Cache)
assert [POLICIES.index(p) for p in ("lru", "sieve", "s3fifo", "wtinylfu", "tinylfu")] == [
    P_LRU, P_SIEVE, P_S3FIFO, P_WTINYLFU, P_TINYLFU]
