# cython: language_level=3, freethreading_compatible=True
"""Compiled LRU engine; ``_lru_py.py`` is its pure-Python twin with the same names.

Entries live in a C arena of structs (key, value, hash, prev, next) indexed by int32 entry
numbers; an open-addressing table (linear probing, Fibonacci hashing, backward-shift deletion,
so no tombstones) maps hashes to entry numbers; a circular doubly-linked list through
``prev``/``next`` orders them, ``head`` being the most recent. An eviction reuses the evicted
entry in place.

Re-entrancy and threads follow CPython's lru_cache: a key's hash is computed once, before any
state is touched; pointer updates run no Python code and sit inside a critical section (a no-op
under the GIL); the section is ended while a key's ``__eq__`` runs, and the probe restarts if
the cache changed meanwhile; references an operation drops are released, and ``on_evict`` is
called, only once the cache is consistent and the section ended.
"""
cimport cython
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdint cimport int32_t, uint64_t, INT32_MAX
from cpython.pyport cimport PY_SSIZE_T_MAX

from _collections_abc import Mapping, MutableMapping  # collections.abc's own module, loaded by os (issue #21: import cost)
from time import monotonic as _monotonic
GenericAlias = type(list[int])  # types.GenericAlias, without importing types

from . import _common  # its CacheInfo is made on first use (issue #21: import cost)
from ._common import (MAX_RESTARTS, LRUType, check_count, check_maxweight,
                      check_time, check_timer, check_ttl, check_weight, copy_of, iter_pairs,
                      lru_repr, rebuild, reduce_lru)

assert MAX_RESTARTS == RESTART_LIMIT


cdef extern from "Python.h":
    void _incref "Py_INCREF"(PyObject*)
    void _decref "Py_DECREF"(PyObject*)
    void _xdecref "Py_XDECREF"(PyObject*)
    int _richcmp_bool "PyObject_RichCompareBool"(PyObject*, PyObject*, int)
    int Py_EQ
    PyObject* _list_new "PyList_New"(Py_ssize_t) except NULL
    PyObject* _call2 "PyObject_CallFunctionObjArgs"(PyObject*, PyObject*, PyObject*, void*)
    void _list_set_item "PyList_SET_ITEM"(PyObject*, Py_ssize_t, PyObject*)
    void PyErr_WriteUnraisable(object)
    int Py_ReprEnter(object) except -1
    void Py_ReprLeave(object)
    ctypedef int (*visitproc)(PyObject*, void*)
    ctypedef int (*traverseproc)(PyObject*, visitproc, void*)
    ctypedef int (*inquiry)(PyObject*)
    ctypedef struct _TypeSlots "PyTypeObject":
        traverseproc tp_traverse
        inquiry tp_clear


cdef extern from *:
    void _prefetch "__builtin_prefetch"(const void*)


cdef extern from "_lru_sync.h":
    ctypedef struct fastlru_cs:
        pass
    void fastlru_cs_begin(fastlru_cs*, object) noexcept
    void fastlru_cs_end(fastlru_cs*) noexcept
    const uint64_t FIB "FASTLRU_FIB"


ctypedef struct Entry:
    PyObject* key      # NULL when the entry is free
    PyObject* value
    Py_hash_t hash
    int32_t prev
    int32_t next


ctypedef struct Stamp:
    # Per entry, only with a ttl: when it expires, and its place in store order (a second
    # circular list, oldest first), so expired entries are found oldest first in O(1) each.
    double expires
    int32_t older
    int32_t newer


cdef enum:
    EMPTY = -1
    MIN_TABLE_BITS = 3
    RESTART_LIMIT = 1000  # = _common.MAX_RESTARTS: restarts of one lookup before it gives up
    INLINE_DROPS = 4      # references an operation can drop without a heap buffer


cdef size_t _NO_SLOT = <size_t>-1


cdef inline size_t _home(Py_hash_t h, int shift) noexcept nogil:
    return <size_t>((<uint64_t>h * <uint64_t>FIB) >> shift)


cdef struct Dropped:
    # References an operation removed, released once the cache is consistent again.
    PyObject** items
    Py_ssize_t n
    PyObject* inline_items[INLINE_DROPS]


cdef inline void _dropped_init(Dropped* d) noexcept:
    d.items = d.inline_items
    d.n = 0


cdef int _dropped_reserve(Dropped* d, Py_ssize_t extra) except -1:
    """Makes room for ``extra`` more references (allocated before any state changes)."""
    cdef PyObject** items
    if d.n + extra <= INLINE_DROPS:
        return 0
    items = <PyObject**>PyMem_Malloc((d.n + extra) * sizeof(PyObject*))
    if items == NULL:
        raise MemoryError()
    for i in range(d.n):
        items[i] = d.items[i]
    if d.items != d.inline_items:
        PyMem_Free(d.items)
    d.items = items
    return 0


cdef object _MISSING = object()


# Not final: subclasses are supported. Its cdef methods are final instead, so they are still
# called directly (and inlined), never through the vtable.
@cython.trashcan(True)  # a chain of caches each holding the next is freed without recursion
@cython.auto_pickle(False)
cdef class LRU:
    """A bounded mapping that forgets its least recently used entries.

    >>> cache = LRU(2)
    >>> cache["a"] = 1; cache["b"] = 2
    >>> cache["a"]
    1
    >>> cache["c"] = 3  # evicts "b", the least recent
    >>> cache.keys()
    ['c', 'a']
    """

    cdef Entry* entries
    cdef Py_ssize_t* weights      # per entry, only when maxweight is set
    cdef Stamp* stamps            # per entry, only when ttl is set (no cost to other caches)
    cdef int32_t oldest           # first entry in store order (with stamps)
    cdef double _ttl
    cdef object _timer
    cdef int32_t* table
    cdef size_t tmask
    cdef size_t miss_slot         # where the last failed lookup ended: an EMPTY slot
    cdef int shift
    cdef Py_ssize_t alloc         # entries allocated
    cdef Py_ssize_t fill          # entries ever handed out (live or on the free list)
    cdef int32_t free_head
    cdef int32_t head             # most recent entry; its prev is the least recent
    cdef Py_ssize_t size
    cdef Py_ssize_t _count
    cdef size_t version           # bumped by every change, promotions included
    cdef uint64_t hits, misses, evictions  # never wrap, also where Py_ssize_t is 32 bits
    cdef Py_ssize_t total_weight
    cdef Py_ssize_t _maxweight
    cdef object on_evict
    cdef object getsizeof
    cdef object __weakref__
    cdef bint ready               # __init__ ran (it may run only once)

    def __cinit__(self, *args, **kwargs):
        self.head = EMPTY
        self.free_head = EMPTY
        self.oldest = EMPTY
        self._timer = _monotonic
        self._count = 1
        self._maxweight = -1
        self.table = self._new_table(MIN_TABLE_BITS)
        self.tmask = (1 << MIN_TABLE_BITS) - 1
        self.shift = 64 - MIN_TABLE_BITS

    def __init__(self, count, pairs=(), *, on_evict=None, maxweight=None, getsizeof=None,
                 ttl=None, timer=_monotonic):
        cdef Py_ssize_t c = check_count(count)
        cdef Py_ssize_t mw = -1
        cdef Py_ssize_t* weights = NULL
        cdef Stamp* stamps = NULL
        cdef bint allocated = True
        cdef fastlru_cs cs
        cdef str problem = None
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
        # Before __init__ a cache is a valid LRU(1) (LRU.__new__, a crafted pickle); entries it
        # holds then could not be given weights, nor be fewer than a smaller count: refused.
        if not self.ready and self.alloc and not self.size:
            self._clear()  # used before __init__, now empty: start from a fresh arena
        fastlru_cs_begin(&cs, self)
        if self.ready:
            problem = "LRU.__init__ called twice"
        elif self.size:
            problem = "LRU.__init__ on a cache that already holds entries"
        else:
            # one weight/stamp per allocated entry: the arena of a used cache may not be empty
            if maxweight is not None:
                weights = <Py_ssize_t*>PyMem_Malloc(
                    (self.alloc if self.alloc > 0 else 1) * sizeof(Py_ssize_t))
                allocated = weights != NULL
            if ttl is not None and allocated:
                stamps = <Stamp*>PyMem_Malloc((self.alloc if self.alloc > 0 else 1) * sizeof(Stamp))
                allocated = stamps != NULL
            if not allocated:
                PyMem_Free(weights)
        if problem is None and allocated:
            if weights != NULL:
                self.weights = weights  # also marks the cache weighted
                self.total_weight = 0
                self._maxweight = mw
            if stamps != NULL:
                self.stamps = stamps  # also marks the cache expiring
                self._ttl = ttl
                self.oldest = EMPTY
            self._timer = timer
            self.ready = True
            self._count = c
            self.on_evict = on_evict
            self.getsizeof = getsizeof
        fastlru_cs_end(&cs)
        if problem is not None:
            raise RuntimeError(problem)
        if not self.ready:
            raise MemoryError()
        for key, value in iter_pairs(pairs):
            self[key] = value

    def __dealloc__(self):
        self._free_entries(self.entries, self.fill)
        self.entries = NULL
        PyMem_Free(self.weights)
        PyMem_Free(self.stamps)
        PyMem_Free(self.table)

    # -- arena and table (critical section held, no Python code) -------------------------

    @cython.final
    cdef int32_t* _new_table(self, int bits) except NULL:
        cdef size_t n = (<size_t>1) << bits
        cdef int32_t* table
        if n > <size_t>PY_SSIZE_T_MAX // sizeof(int32_t):  # 32-bit builds
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
    cdef size_t _table_remove(self, int32_t e) noexcept:
        """Frees the slot of ``e``, shifting its cluster back; returns the EMPTY slot that
        ended the cluster (the only one whose probe paths the shift may have changed)."""
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
            # f may fill the hole at i if its home slot does not lie in (i, j]
            if ((j - _home(self.entries[f].hash, self.shift)) & mask) >= ((j - i) & mask):
                table[i] = f
                i = j
        table[i] = EMPTY
        return j

    @cython.final
    cdef int _rebuild_table(self, int bits) except -1:
        """Rehashes every live entry into a table of 2**bits slots (no key compares)."""
        cdef int32_t* table = self._new_table(bits)
        cdef int32_t e
        PyMem_Free(self.table)
        self.table = table
        self.tmask = ((<size_t>1) << bits) - 1
        self.shift = 64 - bits
        if self.head != EMPTY:
            e = self.head
            while True:
                self._table_insert(e, self.entries[e].hash)
                e = self.entries[e].next
                if e == self.head:
                    break
        return 0

    @cython.final
    cdef int _reserve(self) except -1:
        """Makes room for one more entry: a free entry and a table under half full.

        Strictly under: a cache whose count is a power of two (Odoo's 8192) would otherwise
        run at exactly half load, where linear probing's clusters are longest; every full
        store's miss probe and backward-shift deletion walks them."""
        cdef Py_ssize_t new_alloc
        cdef Entry* entries
        cdef Py_ssize_t* weights
        cdef Stamp* stamps
        cdef int bits
        if (<size_t>self.size + 1) * 2 >= self.tmask + 1:
            bits = 64 - self.shift + 1
            self._rebuild_table(bits)
        if self.free_head != EMPTY or self.fill < self.alloc:
            return 0
        # Doubling while small, then +25%: at most a quarter of the arena is ever unused.
        new_alloc = self.alloc * 2 if self.alloc < 1024 else self.alloc + self.alloc // 4
        if new_alloc < 8:
            new_alloc = 8
        if new_alloc > self._count:
            new_alloc = self._count if self._count > self.alloc else self.alloc + 1
        if new_alloc > INT32_MAX - 1:  # entry numbers are int32
            if self.alloc >= INT32_MAX - 1:
                raise MemoryError("an LRU holds at most 2**31 - 2 entries")
            new_alloc = INT32_MAX - 1
        if <size_t>new_alloc > <size_t>PY_SSIZE_T_MAX // sizeof(Entry):  # 32-bit builds
            raise MemoryError()
        entries = <Entry*>PyMem_Realloc(self.entries, new_alloc * sizeof(Entry))
        if entries == NULL:
            raise MemoryError()
        self.entries = entries
        if self.weights != NULL:
            weights = <Py_ssize_t*>PyMem_Realloc(self.weights, new_alloc * sizeof(Py_ssize_t))
            if weights == NULL:
                raise MemoryError()
            self.weights = weights
        if self.stamps != NULL:
            stamps = <Stamp*>PyMem_Realloc(self.stamps, new_alloc * sizeof(Stamp))
            if stamps == NULL:
                raise MemoryError()
            self.stamps = stamps
        self.alloc = new_alloc
        return 0

    @cython.final
    cdef inline void _prefetch_tail(self) noexcept:
        """Starts loading what evicting the tail will touch (its key object, whose reference
        goes, and its table slot), so the next store does not wait on cold memory."""
        cdef Entry* tail = &self.entries[self.entries[self.head].prev]
        _prefetch(tail.key)
        _prefetch(&self.table[_home(tail.hash, self.shift)])

    @cython.final
    cdef inline int32_t _take_entry(self) noexcept:
        cdef int32_t e = self.free_head
        if e != EMPTY:
            self.free_head = self.entries[e].next
            return e
        e = <int32_t>self.fill
        self.fill += 1
        return e

    # -- linked list (critical section held, no Python code) ------------------------------

    @cython.final
    cdef inline void _link_front(self, int32_t e) noexcept:
        cdef Entry* ents = self.entries
        cdef int32_t head = self.head
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
        self.head = e

    @cython.final
    cdef inline void _unlink(self, int32_t e) noexcept:
        cdef Entry* ents = self.entries
        cdef int32_t nxt = ents[e].next
        cdef int32_t prv
        if nxt == e:
            self.head = EMPTY
            return
        prv = ents[e].prev
        ents[prv].next = nxt
        ents[nxt].prev = prv
        if self.head == e:
            self.head = nxt

    @cython.final
    cdef inline void _promote(self, int32_t e) noexcept:
        cdef int32_t head = self.head
        if e == head:
            return
        if e == self.entries[head].prev:
            self.head = e  # the tail of a circular list becomes its head by moving the head
            return
        self._unlink(e)
        self._link_front(e)

    # -- store order, only with a ttl (critical section held, no Python code) -------------

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
    cdef Py_ssize_t _count_expired(self, double now) noexcept:
        """How many entries, oldest stored first, have expired at ``now``."""
        cdef Py_ssize_t n = 0
        cdef int32_t e = self.oldest
        if self.stamps == NULL:
            return 0
        while e != EMPTY and n < self.size and self.stamps[e].expires <= now:
            n += 1
            e = self.stamps[e].newer
        return n

    @cython.final
    cdef int _expire(self, double now, Dropped* dropped) except -1:
        """Reclaims (as evictions) the entries expired at ``now``, into ``dropped``."""
        cdef Py_ssize_t n = self._count_expired(now)
        if n:
            _dropped_reserve(dropped, 2 * n)
            for _ in range(n):
                self._detach(self.oldest, dropped)
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
        if self.stamps == NULL:
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
    cdef void _detach(self, int32_t e, Dropped* dropped) noexcept:
        """Removes entry ``e``; its references move to ``dropped`` (room reserved)."""
        cdef Entry* ep = &self.entries[e]
        self._unlink(e)
        if self.stamps != NULL:
            self._unstamp(e)
        self._table_remove(e)
        dropped.items[dropped.n] = ep.key
        dropped.items[dropped.n + 1] = ep.value
        dropped.n += 2
        ep.key = NULL
        ep.value = NULL
        ep.next = self.free_head
        self.free_head = e
        self.size -= 1
        if self.weights != NULL:
            self.total_weight -= self.weights[e]
        self.version += 1

    @cython.final
    cdef Py_ssize_t _count_evictions(self, Py_ssize_t count, Py_ssize_t extra) noexcept:
        """How many least-recent entries must go for <= count entries whose weight, plus
        ``extra`` (what the operation adds, maybe negative), is <= maxweight.

        Written as ``total - maxweight > -extra``: every term lies in [0, PY_SSIZE_T_MAX] or
        its negation, so nothing overflows even with maxweight = sys.maxsize."""
        cdef Py_ssize_t n = 0
        cdef Py_ssize_t size = self.size
        cdef Py_ssize_t total = self.total_weight
        cdef Py_ssize_t allowed = -extra
        cdef int32_t e
        if size <= count and (self.weights == NULL or total - self._maxweight <= allowed):
            return 0
        e = self.entries[self.head].prev
        while size > 0 and (size > count or (
                self.weights != NULL and total - self._maxweight > allowed)):
            n += 1
            size -= 1
            if self.weights != NULL:
                total -= self.weights[e]
            e = self.entries[e].prev
        return n

    @cython.final
    cdef void _evict(self, Py_ssize_t n, Dropped* dropped) noexcept:
        for _ in range(n):
            self._detach(self.entries[self.head].prev, dropped)
            self.evictions += 1

    # -- Python code, critical section ended ------------------------------------------------

    @cython.final
    cdef inline Py_ssize_t _find(self, object key, Py_hash_t h, fastlru_cs* cs,
                                 PyObject** hold) except -2:
        """``_lookup`` with its two commonest outcomes inlined: an empty home slot, or the
        very same key object in it."""
        cdef size_t i = _home(h, self.shift)
        cdef int32_t e = self.table[i]
        if e == EMPTY:
            self.miss_slot = i
            return -1
        if self.entries[e].key == <PyObject*>key:
            return e
        return self._lookup(key, h, cs, hold)

    @cython.final
    cdef Py_ssize_t _lookup(self, object key, Py_hash_t h, fastlru_cs* cs,
                            PyObject** hold) except -2:
        """The entry holding ``key``, or -1; called and returning with the section held.

        The section is ended while a key's ``__eq__`` runs; the compared key is kept alive in
        ``*hold`` (released by the caller after ending the section). On error the section is
        ended and ``*hold`` released.
        """
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
                    self.miss_slot = i
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
                        raise RuntimeError("LRU mutated during key comparison")
                    equal = _richcmp_bool(k, <PyObject*>key, Py_EQ)
                    if equal < 0:
                        hold[0] = NULL
                        _decref(k)
                        return -2
                    fastlru_cs_begin(cs, self)
                    if self.version != version:
                        # The cache changed while __eq__ ran: trust a match only if the entry
                        # still holds the very key we compared, else probe again.
                        if equal and e < self.fill and self.entries[e].key == k:
                            return e
                        restarts += 1
                        break
                    if equal:
                        return e
                i = (i + 1) & self.tmask

    @cython.final
    cdef void _release(self, Dropped* dropped, bint evicted) noexcept:
        """Calls on_evict for evicted pairs, then drops the references (section ended)."""
        cdef Py_ssize_t i
        cdef object on_evict = self.on_evict
        cdef PyObject* result
        if evicted and on_evict is not None:
            for i in range(0, dropped.n, 2):
                result = _call2(<PyObject*>on_evict, dropped.items[i], dropped.items[i + 1], NULL)
                if result == NULL:
                    PyErr_WriteUnraisable(on_evict)
                else:
                    _decref(result)
        for i in range(dropped.n):
            _decref(dropped.items[i])
        dropped.n = 0
        if dropped.items != dropped.inline_items:
            PyMem_Free(dropped.items)
            dropped.items = dropped.inline_items

    @cython.final
    cdef Py_ssize_t _weigh(self, object value) except -1:
        if self.getsizeof is None:
            return check_weight(1, self._maxweight)
        return check_weight(self.getsizeof(value), self._maxweight)

    # -- mapping ------------------------------------------------------------------------

    def __getitem__(self, key):
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        if self.stamps != NULL:
            value = self._get_expiring(key, h, _MISSING)
            if value is _MISSING:
                raise KeyError(key)
            return value
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e < 0:
            self.misses += 1
            fastlru_cs_end(&cs)
            _xdecref(hold)
            raise KeyError(key)
        self.hits += 1
        self._promote(<int32_t>e)
        self.version += 1
        value = <object>self.entries[e].value
        fastlru_cs_end(&cs)
        _xdecref(hold)
        return value

    def get(self, key, default=None):
        """The value of ``key`` (made most recent), or ``default``."""
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        if self.stamps != NULL:
            return self._get_expiring(key, h, default)
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e < 0:
            self.misses += 1
            value = default
        else:
            self.hits += 1
            self._promote(<int32_t>e)
            self.version += 1
            value = <object>self.entries[e].value
        fastlru_cs_end(&cs)
        _xdecref(hold)
        return value

    @cython.final
    cdef object _get_expiring(self, object key, Py_hash_t h, object default):
        """``get`` of a cache with a ttl: an expired entry is a miss, reclaimed at once."""
        cdef double now = self._now()
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        cdef Dropped expired
        _dropped_init(&expired)
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0 and self.stamps[e].expires <= now:
            self._detach(<int32_t>e, &expired)  # two references: the inline room suffices
            self.evictions += 1
            e = -1
        if e < 0:
            self.misses += 1
            value = default
        else:
            self.hits += 1
            self._promote(<int32_t>e)
            self.version += 1
            value = <object>self.entries[e].value
        fastlru_cs_end(&cs)
        _xdecref(hold)
        if expired.n:
            self._release(&expired, True)
        return value

    def peek(self, key, default=None):
        """The value of ``key`` without making it most recent, or ``default``."""
        cdef Py_hash_t h = hash(key)
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef Py_ssize_t e
        cdef object value
        cdef double now = 0
        if self.stamps != NULL:
            now = self._now()
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0 and self.stamps != NULL and self.stamps[e].expires <= now:
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
        if self.stamps != NULL:
            now = self._now()
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0 and self.stamps != NULL and self.stamps[e].expires <= now:
            e = -1
        fastlru_cs_end(&cs)
        _xdecref(hold)
        return e >= 0

    def __setitem__(self, key, value):
        self._store(key, value, False)

    def setdefault(self, key, default=None):
        """The value of ``key`` (made most recent); if absent, stores and returns ``default``."""
        return self._store(key, default, True)

    @cython.final
    cdef object _store(self, object key, object value, bint keep):
        cdef Py_hash_t h = hash(key)
        cdef Py_ssize_t w = 1
        cdef fastlru_cs cs
        cdef PyObject* hold = NULL
        cdef PyObject* replaced = NULL
        cdef Py_ssize_t e
        cdef Py_ssize_t n
        cdef int32_t t
        cdef size_t miss_slot
        cdef Entry* ep
        cdef Dropped evicted
        cdef object result = value
        cdef bint timed = self.stamps != NULL
        cdef double now = 0
        if timed:
            now = self._now()
        if self.weights != NULL:
            if keep:
                # setdefault of a present key stores nothing, so weighs nothing
                fastlru_cs_begin(&cs, self)
                e = self._find(key, h, &cs, &hold)
                if e >= 0 and timed and self.stamps[e].expires <= now:
                    e = -1  # expired: stored anew below
                if e >= 0:
                    self._promote(<int32_t>e)
                    self.version += 1
                    result = <object>self.entries[e].value
                fastlru_cs_end(&cs)
                _xdecref(hold)
                hold = NULL
                if e >= 0:
                    return result
            w = self._weigh(value)
        _dropped_init(&evicted)
        fastlru_cs_begin(&cs, self)
        if timed:
            try:
                self._expire(now, &evicted)  # expired entries go before any live one
            except MemoryError:
                fastlru_cs_end(&cs)
                raise
        try:
            e = self._find(key, h, &cs, &hold)  # raising, it ended the section, released hold
        except BaseException:
            self._release(&evicted, True)  # the expired entries it reclaimed: reported, freed
            raise
        if e >= 0:
            self._promote(<int32_t>e)
            self.version += 1
            if timed and self.stamps[e].expires <= now:
                keep = False  # (a timer that went back): its value is gone, store ours
            if keep:
                result = <object>self.entries[e].value
            else:
                if self.weights != NULL:
                    n = self._count_evictions(self._count, w - self.weights[e])
                    try:
                        _dropped_reserve(&evicted, 2 * n)
                    except MemoryError:
                        fastlru_cs_end(&cs)
                        _xdecref(hold)
                        self._release(&evicted, True)  # the expired ones: reported, freed
                        raise
                    # old weight out, evict, new weight in: the total never exceeds maxweight
                    self.total_weight -= self.weights[e]
                    self.weights[e] = 0
                    self._evict(n, &evicted)
                    self.weights[e] = w
                    self.total_weight += w
                ep = &self.entries[e]
                replaced = ep.value
                _incref(<PyObject*>value)
                ep.value = <PyObject*>value
                if timed:
                    self._unstamp(<int32_t>e)
                    self._stamp(<int32_t>e, now + self._ttl)
        else:
            if self.weights == NULL:
                # size <= count always holds: n is 0 or 1 (below 0 once expired entries went)
                n = self.size - self._count + 1
                if n < 0:
                    n = 0
            else:
                n = self._count_evictions(self._count - 1, w)
            if n == 1 and self.weights == NULL:
                # The hot path of a full cache: reuse the least-recent entry in place. It is
                # the prev of head, so making it the head makes it the most recent.
                t = self.entries[self.head].prev
                ep = &self.entries[t]
                miss_slot = self.miss_slot
                if self._table_remove(t) == miss_slot:
                    miss_slot = _NO_SLOT  # the removal shifted our cluster: probe again
                evicted.items[0] = ep.key
                evicted.items[1] = ep.value
                evicted.n = 2
                self.evictions += 1
                _incref(<PyObject*>key)
                _incref(<PyObject*>value)
                ep.key = <PyObject*>key
                ep.value = <PyObject*>value
                ep.hash = h
                if miss_slot != _NO_SLOT:
                    self.table[miss_slot] = t
                else:
                    self._table_insert(t, h)
                if timed:
                    self._unstamp(t)
                    self._stamp(t, now + self._ttl)
                self.head = t
                self._prefetch_tail()
            else:
                try:
                    _dropped_reserve(&evicted, 2 * n)
                    self._evict(n, &evicted)
                    self._reserve()
                except MemoryError:
                    fastlru_cs_end(&cs)
                    _xdecref(hold)
                    self._release(&evicted, True)
                    raise
                t = self._take_entry()
                ep = &self.entries[t]
                _incref(<PyObject*>key)
                _incref(<PyObject*>value)
                ep.key = <PyObject*>key
                ep.value = <PyObject*>value
                ep.hash = h
                if self.weights != NULL:
                    self.weights[t] = w
                    self.total_weight += w
                if timed:
                    self._stamp(t, now + self._ttl)
                self._table_insert(t, h)
                self._link_front(t)
                self.size += 1
            self.version += 1
        fastlru_cs_end(&cs)
        _xdecref(hold)
        _xdecref(replaced)
        if evicted.n == 2 and self.on_evict is None:
            _decref(evicted.items[0])
            _decref(evicted.items[1])
        elif evicted.n:
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
        cdef object value = default
        cdef double now = 0
        cdef bint expired = False
        if self.stamps != NULL:
            now = self._now()
        _dropped_init(&dropped)
        fastlru_cs_begin(&cs, self)
        e = self._find(key, h, &cs, &hold)
        if e >= 0:
            expired = self.stamps != NULL and self.stamps[e].expires <= now
            if expired:
                self.evictions += 1
            self._detach(<int32_t>e, &dropped)
        fastlru_cs_end(&cs)
        _xdecref(hold)
        if expired:
            self._release(&dropped, True)  # reclaimed and reported, not popped
            e = -1
        if e < 0:
            if required:
                raise KeyError(key)
            return default
        value = <object>dropped.items[1]
        self._release(&dropped, False)
        return value

    def popitem(self):
        """Removes and returns the least recent ``(key, value)``."""
        cdef fastlru_cs cs
        cdef Dropped dropped
        cdef Dropped expired
        cdef double now = 0
        if self.stamps != NULL:
            now = self._now()
        _dropped_init(&dropped)
        _dropped_init(&expired)
        fastlru_cs_begin(&cs, self)
        try:
            if self.stamps != NULL:
                self._expire(now, &expired)
            if self.head != EMPTY:
                self._detach(self.entries[self.head].prev, &dropped)
        finally:
            fastlru_cs_end(&cs)
        self._release(&expired, True)
        if not dropped.n:
            raise KeyError("popitem(): LRU is empty")
        item = (<object>dropped.items[0], <object>dropped.items[1])
        self._release(&dropped, False)
        return item

    def clear(self):
        """Removes every entry."""
        self._clear()

    @cython.final
    cdef int _clear(self) except -1:
        cdef fastlru_cs cs
        cdef int32_t* table = self._new_table(MIN_TABLE_BITS)
        cdef Entry* entries
        cdef Py_ssize_t fill
        fastlru_cs_begin(&cs, self)
        entries = self.entries
        fill = self.fill
        PyMem_Free(self.table)
        self.table = table
        self.tmask = (1 << MIN_TABLE_BITS) - 1
        self.shift = 64 - MIN_TABLE_BITS
        self.entries = NULL
        self.alloc = 0
        self.fill = 0
        self.free_head = EMPTY
        self.head = EMPTY
        self.oldest = EMPTY
        self.size = 0
        self.total_weight = 0
        self.version += 1
        fastlru_cs_end(&cs)
        # The chain is detached: keys' and values' __del__ may now use the (empty) cache.
        self._free_entries(entries, fill)
        return 0

    @cython.final
    cdef void _free_entries(self, Entry* entries, Py_ssize_t fill) noexcept:
        if entries == NULL:
            return
        for i in range(fill):
            _xdecref(entries[i].key)
            _xdecref(entries[i].value)
        PyMem_Free(entries)

    def update(self, other=(), /, **kwargs):
        """Stores every pair of a mapping, of an object with ``keys()``, or of an iterable."""
        if isinstance(other, LRUType):
            # other[key] would promote, i.e. mutate other while iterating it; oldest first
            # keeps other's recency order
            for key, value in reversed(other.items()):
                self[key] = value
        elif isinstance(other, Mapping):
            for key in other:
                self[key] = other[key]
        elif hasattr(other, "keys"):
            for key in other.keys():
                self[key] = other[key]
        else:
            # every item is checked to be a pair before the first is stored
            for key, value in list(iter_pairs(other)):
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __len__(self):
        cdef fastlru_cs cs
        cdef Py_ssize_t size
        if self.stamps != NULL:
            self._expire_now()
        fastlru_cs_begin(&cs, self)
        size = self.size
        fastlru_cs_end(&cs)
        return size

    # -- capacity ---------------------------------------------------------------------

    @property
    def count(self):
        """The most entries the cache holds; assigning a smaller one evicts at once."""
        cdef fastlru_cs cs
        cdef Py_ssize_t count
        fastlru_cs_begin(&cs, self)
        count = self._count
        fastlru_cs_end(&cs)
        return count

    @count.setter
    def count(self, count):
        cdef Py_ssize_t c = check_count(count)
        cdef fastlru_cs cs
        cdef Dropped evicted
        cdef Py_ssize_t n
        self._expire_now()
        _dropped_init(&evicted)
        fastlru_cs_begin(&cs, self)
        n = self._count_evictions(c, 0)
        try:
            _dropped_reserve(&evicted, 2 * n)
            self._count = c
            self._evict(n, &evicted)
            # (decided on fill, which the twin mirrors: the same cut compacts both alike)
            if self.fill // 2 > c and self.fill > 64:
                self._compact(c)
        finally:
            fastlru_cs_end(&cs)
        self._release(&evicted, True)

    @count.deleter
    def count(self):
        raise AttributeError("count cannot be deleted")

    @cython.final
    cdef int _compact(self, Py_ssize_t new_alloc) except -1:
        """Moves the live entries, most recent first, into a smaller arena."""
        cdef Entry* entries = <Entry*>PyMem_Malloc(new_alloc * sizeof(Entry))
        cdef Py_ssize_t* weights = NULL
        cdef Stamp* stamps = NULL
        cdef Stamp* old_stamps
        cdef int32_t e = self.head
        cdef int32_t j = 0
        cdef int bits = MIN_TABLE_BITS
        if entries == NULL:
            raise MemoryError()
        if self.weights != NULL:
            weights = <Py_ssize_t*>PyMem_Malloc(new_alloc * sizeof(Py_ssize_t))
            if weights == NULL:
                PyMem_Free(entries)
                raise MemoryError()
        if self.stamps != NULL:
            stamps = <Stamp*>PyMem_Malloc(new_alloc * sizeof(Stamp))
            if stamps == NULL:
                PyMem_Free(entries)
                PyMem_Free(weights)
                raise MemoryError()
        while ((<Py_ssize_t>1) << bits) <= 2 * self.size:  # under half full, as _reserve
            bits += 1
        for j in range(self.size):
            entries[j] = self.entries[e]
            entries[j].prev = j - 1 if j else <int32_t>(self.size - 1)
            entries[j].next = j + 1 if j + 1 < self.size else 0
            if weights != NULL:
                weights[j] = self.weights[e]
            self.entries[e].prev = j  # the old arena now maps an old entry to its new number
            e = self.entries[e].next
        if stamps != NULL:
            # the store order survives: walk it, oldest first, in the new numbering
            old_stamps = self.stamps
            e = self.oldest
            self.stamps = stamps
            self.oldest = EMPTY
            for _ in range(self.size):
                self._stamp(self.entries[e].prev, old_stamps[e].expires)
                e = old_stamps[e].newer
            PyMem_Free(old_stamps)
        PyMem_Free(self.entries)
        self.entries = entries
        if weights != NULL:
            PyMem_Free(self.weights)
            self.weights = weights
        self.alloc = new_alloc
        self.fill = self.size
        self.free_head = EMPTY
        self.head = 0 if self.size else EMPTY
        self.version += 1
        self._rebuild_table(bits)
        return 0

    @property
    def maxweight(self):
        """The weight bound, or None."""
        cdef fastlru_cs cs
        cdef Py_ssize_t maxweight
        cdef bint weighted
        fastlru_cs_begin(&cs, self)
        maxweight = self._maxweight
        weighted = self.weights != NULL
        fastlru_cs_end(&cs)
        return maxweight if weighted else None

    @property
    def weight(self):
        """The total weight of the entries (their number without a weight bound)."""
        cdef fastlru_cs cs
        cdef Py_ssize_t weight
        self._expire_now()
        fastlru_cs_begin(&cs, self)
        weight = self.total_weight if self.weights != NULL else self.size
        fastlru_cs_end(&cs)
        return weight

    @property
    def ttl(self):
        """Seconds an entry lives after it is stored, or None."""
        return self._ttl if self.stamps != NULL else None

    @property
    def timer(self):
        """What tells the time of a cache with a ttl (``time.monotonic`` by default)."""
        return self._timer

    def clear_stats(self):
        """Resets the hits, misses and evictions counters to zero."""
        cdef fastlru_cs cs
        fastlru_cs_begin(&cs, self)
        self.hits = self.misses = self.evictions = 0
        fastlru_cs_end(&cs)

    def info(self):
        """``CacheInfo(hits, misses, evictions, size, count)``; ``maxsize`` and ``currsize``
        name ``count`` and ``size`` as ``functools`` does."""
        cdef fastlru_cs cs
        cdef uint64_t hits, misses, evictions
        cdef Py_ssize_t size, count
        self._expire_now()
        fastlru_cs_begin(&cs, self)
        hits, misses, evictions = self.hits, self.misses, self.evictions
        size, count = self.size, self._count
        fastlru_cs_end(&cs)
        return _common.CacheInfo(hits, misses, evictions, size, count)

    # -- views ------------------------------------------------------------------------

    @cython.final
    cdef list _snapshot(self, bint keys, bint values):
        """New list(s) of keys and/or values, most recent first."""
        cdef fastlru_cs cs
        cdef PyObject* klist = NULL
        cdef PyObject* vlist = NULL
        cdef Py_ssize_t n, i
        cdef int32_t e
        self._expire_now()
        while True:
            fastlru_cs_begin(&cs, self)
            n = self.size
            fastlru_cs_end(&cs)
            # Allocated before the section (allocation may run the GC, i.e. Python code),
            # then filled only if nothing changed meanwhile.
            if keys:
                klist = _list_new(n)
            if values:
                try:
                    vlist = _list_new(n)
                except MemoryError:
                    _xdecref(klist)
                    raise
            fastlru_cs_begin(&cs, self)
            if self.size == n:
                break
            fastlru_cs_end(&cs)
            _xdecref(klist)
            _xdecref(vlist)
        e = self.head
        for i in range(n):
            if keys:
                _incref(self.entries[e].key)
                _list_set_item(klist, i, self.entries[e].key)
            if values:
                _incref(self.entries[e].value)
                _list_set_item(vlist, i, self.entries[e].value)
            e = self.entries[e].next
        fastlru_cs_end(&cs)
        result = [<object>klist if keys else None, <object>vlist if values else None]
        _xdecref(klist)
        _xdecref(vlist)
        return result

    def keys(self):
        """Keys, most recent first (a list)."""
        return self._snapshot(True, False)[0]

    def values(self):
        """Values, most recent first (a list)."""
        return self._snapshot(False, True)[1]

    def items(self):
        """``(key, value)`` pairs, most recent first (a list)."""
        keys, values = self._snapshot(True, True)
        return list(zip(keys, values))

    def __iter__(self):
        self._expire_now()
        return _Iterator(self, True)

    def __reversed__(self):
        self._expire_now()
        return _Iterator(self, False)

    # -- whole-object protocols ----------------------------------------------------------

    @classmethod
    def __class_getitem__(cls, item):
        return GenericAlias(cls, item)

    def copy(self):
        """A new LRU with the same bound, callbacks, items and order (fresh statistics)."""
        return rebuild(type(self), self.count, reversed(self.items()), self.on_evict,
                       self.maxweight, self.getsizeof, LRU, self.ttl, self._timer)

    def __copy__(self):
        return copy_of(self, LRU, self.count, self.on_evict, self.maxweight, self.getsizeof,
                       self.ttl, self._timer)

    def __reduce__(self):
        return reduce_lru(self, LRU, self.count, self.on_evict, self.maxweight, self.getsizeof,
                          self.ttl, self._timer)

    def __eq__(self, other):
        if isinstance(other, LRUType):
            return self.items() == other.items()
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        if Py_ReprEnter(self):
            return "..."
        try:
            return lru_repr(self, self.count, self.items(), self.on_evict, self.maxweight,
                            self.getsizeof, self.ttl, self._timer)
        finally:
            Py_ReprLeave(self)

    def _check(self):
        """Debug: raises AssertionError unless the list, the table and the counters agree."""
        cdef fastlru_cs cs
        cdef Py_ssize_t n = 0, total = 0
        cdef int32_t e
        cdef size_t i, s
        cdef str problem = None
        fastlru_cs_begin(&cs, self)
        if self.head != EMPTY:
            e = self.head
            while problem is None:
                n += 1
                if n > self.size:
                    problem = "list longer than size"
                elif self.entries[self.entries[e].next].prev != e:
                    problem = "broken back link"
                elif self.entries[e].key == NULL:
                    problem = "free entry in the list"
                e = self.entries[e].next
                if e == self.head:
                    break
        if problem is None and n != self.size:
            problem = "list and size disagree"
        if problem is None and self.size > self._count:
            problem = "size above count"
        if problem is None:
            n = 0
            for s in range(self.tmask + 1):
                e = self.table[s]
                if e == EMPTY:
                    continue
                n += 1
                i = _home(self.entries[e].hash, self.shift)
                while self.table[i] != e:
                    if self.table[i] == EMPTY:
                        problem = "entry unreachable from its home slot"
                        break
                    i = (i + 1) & self.tmask
                if self.weights != NULL:
                    total += self.weights[e]
            if problem is None and n != self.size:
                problem = "table and list disagree"
            if problem is None and <size_t>self.size * 2 >= self.tmask + 1:
                problem = "table half full or more"
            if problem is None and self.stamps != NULL and self.oldest != EMPTY:
                n = 0
                e = self.oldest
                while problem is None:
                    n += 1
                    if n > self.size:
                        problem = "store order longer than size"
                    elif self.entries[e].key == NULL:
                        problem = "free entry in the store order"
                    elif self.stamps[self.stamps[e].newer].older != e:
                        problem = "broken store-order link"
                    e = self.stamps[e].newer
                    if e == self.oldest:
                        break
                if problem is None and n != self.size:
                    problem = "store order and size disagree"
            elif problem is None and self.stamps != NULL and self.size:
                problem = "store order and size disagree"
            if problem is None and self.weights != NULL:
                if total != self.total_weight:
                    problem = "weight total drifted"
                elif self.total_weight > self._maxweight:
                    problem = "weight above maxweight"
        fastlru_cs_end(&cs)
        if problem is not None:
            raise AssertionError(problem)


@cython.final
@cython.auto_pickle(False)
cdef class _Iterator:
    """Keys in recency order; raises RuntimeError once the cache changed. As dict's: once
    exhausted it stays exhausted (and lets go of the cache); once failed it keeps failing."""

    cdef LRU lru                  # None once exhausted
    cdef int32_t e
    cdef Py_ssize_t remaining
    cdef size_t version
    cdef bint forward

    def __cinit__(self, LRU lru not None, bint forward):
        cdef fastlru_cs cs
        self.lru = lru
        self.forward = forward
        fastlru_cs_begin(&cs, lru)
        self.version = lru.version
        self.remaining = lru.size
        fastlru_cs_end(&cs)
        self.e = EMPTY

    def __iter__(self):
        return self

    def __next__(self):
        cdef fastlru_cs cs
        cdef LRU lru = self.lru
        cdef object key = None
        cdef bint changed
        cdef bint got = False
        if lru is None:
            raise StopIteration
        fastlru_cs_begin(&cs, lru)
        changed = lru.version != self.version
        if not changed and self.remaining > 0:
            if self.e == EMPTY:
                self.e = lru.head if self.forward else lru.entries[lru.head].prev
            key = <object>lru.entries[self.e].key
            got = True
            self.e = lru.entries[self.e].next if self.forward else lru.entries[self.e].prev
            self.remaining -= 1
        fastlru_cs_end(&cs)
        if changed:
            raise RuntimeError("LRU mutated during iteration")
        if not got:
            self.lru = None
            raise StopIteration
        return key


# The arena holds Python references in C memory: teach the GC to see and break cycles there.
cdef traverseproc _base_traverse = (<_TypeSlots*>LRU).tp_traverse
cdef inquiry _base_clear = (<_TypeSlots*>LRU).tp_clear


cdef int _lru_traverse(PyObject* o, visitproc visit, void* arg) noexcept:
    cdef LRU self = <LRU>o
    cdef int r
    cdef Py_ssize_t i
    if _base_traverse != NULL:
        r = _base_traverse(o, visit, arg)
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


cdef int _lru_clear(PyObject* o) noexcept:
    cdef LRU self = <LRU>o
    try:
        self._clear()  # never a subclass's clear(): the GC must not run arbitrary code here
    except BaseException:
        PyErr_WriteUnraisable(self)
    if _base_clear != NULL:
        return _base_clear(o)
    return 0


(<_TypeSlots*>LRU).tp_traverse = <traverseproc>_lru_traverse
(<_TypeSlots*>LRU).tp_clear = <inquiry>_lru_clear

MutableMapping.register(LRU)
LRUType.register(LRU)


# -- a C-level lookup for compiled callers (ormcache's hit path) ---------------------------------
# Reached through the capsule ``_GET_KNOWN`` (no Python call, no key hashing, no KeyError on a
# miss); an internal detail of the compiled engine, with no twin: ormcache's tests cover it.

cdef extern from "_plain_tuple.h":
    object PyCapsule_New(void* pointer, const char* name, void* destructor)
    bint _plain_tuple "fastlru_plain_tuple"(PyObject*) noexcept
    bint _tuple_check_exact "PyTuple_CheckExact"(PyObject*) noexcept
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE"(PyObject*) noexcept
    PyObject** _tuple_items "fastlru_tuple_items"(PyObject*) noexcept


cdef inline bint _same_items(PyObject* stored, PyObject* key) noexcept:
    """True if the stored key equals the probe ``key`` (an exact tuple) with no ``__eq__`` run:
    a tuple compared by tuple's own rich comparison, of the same length, whose items are the
    probe's very objects (which ``tuple.__eq__`` finds equal by identity)."""
    cdef Py_ssize_t i, n = _tuple_size(key)
    cdef PyObject** a
    cdef PyObject** b
    if not _plain_tuple(stored):
        return False
    if _tuple_size(stored) != n:
        return False
    a = _tuple_items(stored)
    b = _tuple_items(key)
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True


cdef int _get_known(LRU self, object key, Py_hash_t h, PyObject** value) except -1:
    """``self[key]`` where ``h`` is ``hash(key)`` (computed by the caller, as ``__getitem__``
    would, before any state is touched) and ``self`` is exactly an ``LRU``: 1 and the value (a
    new reference in ``*value``) on a hit, made most recent; 0 on a miss, with no exception
    (no ``KeyError`` is made); -1 with the exception of a failed lookup. Hits and misses are
    counted as by ``__getitem__``, and a lookup that has to compare keys with ``__eq__`` is
    ``__getitem__``'s own (``_lookup``: section ended meanwhile, restarts). A probe that is an
    exact tuple finds a stored tuple of its very items without calling any ``__eq__``."""
    cdef fastlru_cs cs
    cdef PyObject* hold = NULL
    cdef Py_ssize_t e
    cdef size_t i
    cdef int32_t f
    cdef Entry* ep
    cdef object found
    value[0] = NULL
    if self.stamps != NULL:
        found = self._get_expiring(key, h, _MISSING)
        if found is _MISSING:
            return 0
        _incref(<PyObject*>found)
        value[0] = <PyObject*>found
        return 1
    fastlru_cs_begin(&cs, self)
    e = -1
    if _tuple_check_exact(<PyObject*>key):
        i = _home(h, self.shift)
        while True:
            f = self.table[i]
            if f == EMPTY:
                self.miss_slot = i
                break
            ep = &self.entries[f]
            if ep.key == <PyObject*>key or (ep.hash == h and _same_items(ep.key, <PyObject*>key)):
                e = f
                break
            if ep.hash == h:  # equal only if __eq__ says so: the engine's own lookup decides
                e = self._lookup(key, h, &cs, &hold)
                break
            i = (i + 1) & self.tmask
    else:
        e = self._find(key, h, &cs, &hold)
    if e < 0:
        self.misses += 1
        fastlru_cs_end(&cs)
        _xdecref(hold)
        return 0
    self.hits += 1
    self._promote(<int32_t>e)
    self.version += 1
    value[0] = self.entries[e].value
    _incref(value[0])
    fastlru_cs_end(&cs)
    _xdecref(hold)
    return 1


_GET_KNOWN = PyCapsule_New(<void*>_get_known, b"fastlru._lru_c._GET_KNOWN", NULL)


cdef int _peek_known(LRU self, object key, Py_hash_t h, PyObject** value) except -1:
    """``self.peek(key)`` where ``h`` is ``hash(key)``: 1 and the value (a new reference in
    ``*value``), 0 when absent or expired, -1 with the exception of a failed lookup; neither
    counted nor made most recent (ormcache's miss looks again before it computes)."""
    cdef fastlru_cs cs
    cdef PyObject* hold = NULL
    cdef Py_ssize_t e
    cdef double now = 0
    value[0] = NULL
    if self.stamps != NULL:
        now = self._now()
    fastlru_cs_begin(&cs, self)
    e = self._find(key, h, &cs, &hold)
    if e >= 0 and self.stamps != NULL and self.stamps[e].expires <= now:
        e = -1  # expired: absent (reclaimed by a later get or store)
    if e >= 0:
        value[0] = self.entries[e].value
        _incref(value[0])
    fastlru_cs_end(&cs)
    _xdecref(hold)
    return 1 if e >= 0 else 0


_PEEK_KNOWN = PyCapsule_New(<void*>_peek_known, b"fastlru._lru_c._PEEK_KNOWN", NULL)
