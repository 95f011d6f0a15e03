# cython: language_level=3, freethreading_compatible=True
"""The hit path, compiled: the twin of ``_cache_py`` (same names, same keys, same behaviour).

``cached_method(spec)`` returns a ``CachedMethod``: a callable extension type with vectorcall,
flagged as a method descriptor, so ``model.get_param(key)`` reaches the C hit path without a
bound method, an argument tuple or a keyword dict. A hit costs: finding the (pool, model) slot
(by the owner's type and its version tag: alone for slotted records such as Odoo's; for ordinary
classes plus the instance dict's own ``pool`` and ``_name``, read directly and, on CPython
3.9-3.12, remembered per dict version; getattr only for custom getattr or descriptors),
refilling the wrapper's own probe key tuple (no allocation), the key's hash folded from the
slot's (model, method) prefix with only the arguments' hashes computed (as ``tuple.__hash__``
folds them), one C call into the compiled engine (``fastlru._lru_c._get_known``: no Python call,
a stored key of the probe's very items matched without ``__eq__``, no ``KeyError`` on a miss)
and one C integer increment; caches that are not exactly the compiled ``LRU`` get
``PyObject_GetItem``. A miss is computed here too (``_miss``, the twin of ``_cold.miss``: its single flight
without Python frames); anything else (a new registry or model, a wait for another caller's
flight, the store rule, an error) goes to the shared Python code in ``_cold``.

Measured with ``python -m ormcache._bench`` (the same numbers appear in ``python -m fastlru.bench``).
"""
cimport cython
from cpython.object cimport PyObject
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.mem cimport PyMem_Calloc, PyMem_Free

from time import perf_counter as _perf_counter

import sys

from fastlru._aio import AsyncFlights, function_like
from fastlru._functools_c import _awaited_capi

from ormcache._cold import lookup_failed as _lookup_failed, multi_rest as _multi_rest, resolve as _resolve, uncached as _uncached
from fastlru._flight import AGAIN as _AGAIN, LAND_GUARDED as _LAND_GUARDED, claim as _claim, land as _land
from ormcache._cold import follow as _follow, recheck as _recheck, store as _store
from ormcache._async import await_miss as _await_miss, cached_coroutine as _cached_coroutine_py
from ormcache._spec import MethodSpec as _MethodSpec
from ormcache.registry import DELETE_HOOKS

cdef extern from "Python.h":
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)
    # raw returns (NULL + exception) so the hit path can tell a miss from an error itself
    PyObject* PyObject_GetItem(object o, object key)
    PyObject** PySequence_Fast_ITEMS(object o)
    PyObject* PyObject_Vectorcall(object callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    object PyMethod_New(object func, object self)
    int PyErr_ExceptionMatches(object exc)
    void PyErr_Clear()

cdef extern from "_cache_compat.h":
    void ormcache_enable_vectorcall(object type, Py_ssize_t offset)

cdef extern from "_cache_owner.h":
    Py_ssize_t Py_REFCNT(PyObject* o)
    int ormcache_owner_kind(object type, object pool_name, object name_name, PyObject** pool, PyObject** name, unsigned int* tag)
    ctypedef struct ormcache_seen:
        PyObject* dict
    unsigned long long ormcache_version_or_zero(PyObject* d)
    bint ormcache_same_dict(PyObject* d, PyObject* seen, unsigned long long version)
    int ormcache_instance_attrs(PyObject* obj, object pool_name, object name_name, ormcache_seen* seen, PyObject** pool, PyObject** name)
    PyObject* ormcache_seen_attr(PyObject* obj, ormcache_seen* seen, int* absent)
    unsigned int ormcache_type_tag(object type)
    PyObject* Py_TYPE_raw "(PyObject *)Py_TYPE" (PyObject* o)

cdef extern from "_cache_keys.h":
    object ormcache_steal(PyObject* o)  # a new reference, handed to Cython as is
    bint ormcache_scratch_free(PyObject* t)
    void ormcache_fill(PyObject* t, PyObject* model, PyObject* func, PyObject** args, const Py_ssize_t* indices, Py_ssize_t n)
    void ormcache_unfill(PyObject* t, Py_ssize_t n)
    void ormcache_fill_item(PyObject* t, Py_ssize_t i, PyObject* value)
    object ormcache_hashed(PyObject* t)
    object ormcache_key_type()
    Py_hash_t ormcache_part_hash(PyObject* o)
    Py_hash_t ormcache_item_hash(PyObject* o)
    ctypedef struct ormcache_attr:  # a plan step's attribute cache (the fields are C's)
        unsigned int tag
    enum: ORMCACHE_MAX_ATTRS
    ctypedef struct ormcache_memo:  # a plan step's last frozenset(tuple) (the fields are C's)
        PyObject* result
    void ormcache_memos_clear(ormcache_memo* memos, Py_ssize_t n)
    ctypedef struct ormcache_step:  # a key plan's value, flattened (the fields are C's)
        Py_ssize_t position
    void ormcache_steps_init(ormcache_step* steps, object plan, const Py_ssize_t* positions)
    PyObject* ormcache_plan_values(const ormcache_step* steps, Py_ssize_t n, PyObject** args, Py_ssize_t nargs,
                                   ormcache_attr* cache, ormcache_memo* memos)
    int ormcache_plan_fill(PyObject* t, PyObject* model, PyObject* func, const ormcache_step* steps, Py_ssize_t n,
                           PyObject** args, Py_ssize_t nargs, ormcache_attr* cache, ormcache_memo* memos)
    PyObject* PyTuple_GET_ITEM_raw "PyTuple_GET_ITEM" (object t, Py_ssize_t i)

cdef extern from "_cache_errors.h":
    int ormcache_lookup_failure(PyObject* key)  # -1: a BaseException left pending
    object ormcache_fetch_error()
    void raise_pending "ormcache_raise_pending" () except *

cdef extern from "_cache_keys.h":
    ctypedef size_t Py_uhash_t
    ctypedef int (*get_known_t "ormcache_get_known_t")(PyObject* lru, PyObject* key, Py_hash_t h, PyObject** value) noexcept
    Py_uhash_t ormcache_fold_start()
    Py_uhash_t ormcache_fold(Py_uhash_t acc, Py_hash_t lane)
    Py_hash_t ormcache_fold_end(Py_uhash_t acc, Py_ssize_t n)
    bint ormcache_fold_matches(object t)
    bint ormcache_constant_hash(PyObject* o)
    Py_hash_t PyObject_Hash_raw "PyObject_Hash" (PyObject* o)
    void* PyCapsule_GetPointer(object capsule, const char* name) except NULL

cdef extern from "_cache_errors.h":
    int ormcache_error_kind()

cdef enum:
    # at most this many plain parameter names take the fast key path (more use the key function)
    MAX_INDICES = 8
    # the (pool, model) pairs a method remembers (an inherited method serves many models: Odoo's
    # mixin and BaseModel methods serve hundreds); past this, it starts over from the new one
    MAX_SLOTS = 1024

cdef extern from "_cache_owner.h":
    ctypedef struct ormcache_entry:
        PyObject* type
        PyObject* slot

cdef extern from "_cache_owner.h":
    Py_ssize_t ormcache_member_offset(object type, object name)
    PyObject* ormcache_member_read(PyObject* obj, Py_ssize_t offset)
    bint ormcache_plain_dict(object context, object get_name)
    PyObject* ormcache_type_slot(ormcache_entry* entries, size_t mask, PyObject* type)
    int ormcache_type_add(ormcache_entry* entries, size_t mask, PyObject* type, PyObject* slot)

# The compiled engine's lookup with a known hash (fastlru._lru_c._get_known: a hit without a
# Python call, a miss without a KeyError), for caches that are exactly its LRU; and whether the
# key's hash may be folded item by item (it gives hash() of sample tuples on this interpreter).
cdef get_known_t _get_known = NULL
cdef get_known_t _peek_known = NULL  # (fastlru._lru_c._peek_known: the same, as ``peek``)
cdef object _engine_lru = None
try:
    from fastlru._lru_c import LRU as _engine_lru, _GET_KNOWN, _PEEK_KNOWN
except ImportError:  # the engine's twin only: every lookup goes through PyObject_GetItem
    pass
else:
    _get_known = <get_known_t>PyCapsule_GetPointer(_GET_KNOWN, b"fastlru._lru_c._GET_KNOWN")
    _peek_known = <get_known_t>PyCapsule_GetPointer(_PEEK_KNOWN, b"fastlru._lru_c._PEEK_KNOWN")
cdef bint _fold_ok = True
for _sample in ((), ("ir.model",), ("ir.model", len, "key", None, 1.5, -1, 2 ** 70, (1, "x"))):
    _fold_ok = _fold_ok and ormcache_fold_matches(_sample)

# bumped when a registry is deleted: wrappers then drop their slots (and the registries in them)
cdef unsigned long _epoch = 0


def forget_registries():
    """Make every wrapper drop the registries it remembers (called by ``Registry.delete``)."""
    global _epoch
    _epoch += 1


@cython.final
cdef class Counter:
    """Statistics of one (database, model, method)."""

    cdef public str cache_name
    cdef public Py_ssize_t hit
    cdef public Py_ssize_t miss
    cdef public Py_ssize_t err
    cdef public double gen_time
    # Odoo 19's transaction statistics (first lookup of a key in a cursor_scope(); tx_stats)
    cdef public Py_ssize_t tx_hit
    cdef public Py_ssize_t tx_miss
    cdef public Py_ssize_t tx_err

    def __init__(self, cache_name=""):
        self.cache_name = cache_name

    @property
    def ratio(self):
        """Hits in percent of lookups."""
        return 100.0 * self.hit / ((self.hit + self.miss) or 1)

    @property
    def tx_ratio(self):
        """Transactions' first lookups served by the cache, in percent."""
        return 100.0 * self.tx_hit / ((self.tx_hit + self.tx_miss) or 1)

    @property
    def tx_calls(self):
        """Transactions' first lookups (``tx_hit + tx_miss``)."""
        return self.tx_hit + self.tx_miss

    def __repr__(self):
        return f"<Counter hit={self.hit} miss={self.miss} err={self.err} gen_time={self.gen_time:.6f}>"


@cython.final
cdef class _Slot:
    """What serves the calls from one (pool, model key): immutable once published. Its first six
    fields are ``ormcache._spec.Slot``'s (the twin's and the async path's), in the same order;
    the rest is how C finds it by the owner's type."""

    cdef object pool, mkey, registry, model, lru
    cdef Counter counter
    # set when the owner's type tells how its instances read pool and _name (ormcache_owner_kind):
    # the type, its version tag, the kind (1: no instance dict, 2: the instance dict first) and
    # the class attributes (None when absent, as getattr's default)
    cdef object owner_type
    cdef unsigned int tag
    cdef int kind
    cdef object class_pool, class_name
    # the last instance dict read for this type (kind 2), and what it held
    cdef ormcache_seen seen
    # ormcache_context, kind 1: the class's env and _context decide the context (None: absent)
    cdef bint context_by_type
    cdef object class_env, class_context
    # ormcache_context, kind 1, env a __slots__ entry (Odoo's records): its offset in the owner,
    # and how instances of env_type (at env_tag) read ``context`` (env_kind, as ``kind``; the
    # class attribute env_class_context; the last env dict read: env_seen)
    cdef Py_ssize_t env_offset
    cdef object env_type
    cdef unsigned int env_tag
    cdef int env_kind
    cdef object env_class_context
    cdef ormcache_seen env_seen
    # the lru is exactly the compiled engine's (_get_known applies); prefixed: the key's hash
    # is folded from ``prefix``, the fold of the constant items (model, func)
    cdef bint known
    cdef bint prefixed
    cdef Py_uhash_t prefix


@cython.final
cdef class _Table:
    """The slots of a method: immutable once published, replaced whole when a slot is added
    (a call holds the table it read, whatever another thread publishes meanwhile). A hit finds
    its slot by the owner's type in ``types`` (one probe, usually), or for owners the type
    does not decide by (pool, model key) identities: the most recent slot, then ``pairs``."""

    # every slot, most recent first: keeps the slots (and their types) the arrays point to
    cdef tuple slots
    # owner type -> slot, for slots whose type tells how its instances read pool and _name
    cdef ormcache_entry* types
    cdef size_t mask
    # (id(pool), id(model key)) -> slot: checked by identity (an id may be reused)
    cdef dict pairs

    def __dealloc__(self):
        PyMem_Free(self.types)


cdef _Table _EMPTY_TABLE = _new_table(())


cdef _Table _new_table(tuple slots):
    """The table of ``slots`` (most recent first: a type or pair keeps its most recent slot)."""
    cdef _Table table = _Table.__new__(_Table)
    cdef size_t size = 8
    cdef _Slot slot
    while size < 2 * <size_t>len(slots) + 2:
        size *= 2
    table.types = <ormcache_entry*>PyMem_Calloc(size, sizeof(ormcache_entry))
    if table.types == NULL:
        raise MemoryError()
    table.mask = size - 1
    table.slots = slots
    table.pairs = {}
    for slot in reversed(slots):  # the most recent last: its pair wins
        table.pairs[(id(slot.pool), id(slot.mkey))] = slot
    for slot in slots:  # the most recent first: its type wins
        if slot.owner_type is not None:
            ormcache_type_add(table.types, table.mask, <PyObject*>slot.owner_type, <PyObject*>slot)
    return table


cdef inline tuple _positional(PyObject** args, Py_ssize_t n):
    cdef tuple result = PyTuple_New(n)
    cdef Py_ssize_t i
    cdef object item
    for i in range(n):
        item = <object>args[i]
        Py_INCREF(item)
        PyTuple_SET_ITEM(result, i, item)
    return result


cdef dict _keywords(PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef dict result = {}
    cdef Py_ssize_t i
    if kwnames != NULL:
        names = <tuple>kwnames
        for i in range(len(names)):
            result[names[i]] = <object>args[nargs + i]
    return result


@cython.final
cdef class CachedMethod:
    """A method wrapped by ``ormcache`` (``__wrapped__``, ``clear_cache``, ``__cache__``)."""

    cdef void* _vectorcall
    cdef dict __dict__
    cdef object __weakref__
    cdef readonly object func
    cdef readonly object flights  # a dict (fastlru._aio.AsyncFlights for an async def)
    # an async def (cached_coroutine): a hit returns an AwaitedValue, a miss _async.await_miss
    cdef bint awaited
    # the LRU whose flights are keyed by the key alone (the first a miss used; compared, never
    # dereferenced): other LRUs' flights by (id(lru), key), as ``_cold.miss`` keys them all
    cdef PyObject* flight_lru
    cdef object key_function
    cdef object cache_name
    cdef object static_model
    cdef bint has_owner
    cdef bint fast
    cdef Py_ssize_t n_indices
    cdef Py_ssize_t indices[MAX_INDICES]
    cdef Py_ssize_t min_args
    cdef Py_ssize_t max_args
    # the slots of the (pool, model) pairs seen (see _Table); replaced whole, never mutated
    cdef _Table table
    cdef unsigned long epoch
    # the probe key of fast-path hits, refilled per call (see ormcache_scratch_free)
    cdef tuple scratch
    # the probe key of expression-key hits (the key lambda's values after model and method),
    # made on first use at the lambda's length; expr_lost: someone kept it, never made again
    cdef tuple expr_scratch
    # keys.KeyFunction.plan: the expressions evaluated here, without the key lambda (or None):
    # (default, attribute names, builtin or None) per value, its argument position apart
    cdef tuple plan
    cdef Py_ssize_t plan_positions[MAX_INDICES]
    # the plan flattened for the call path (ormcache_step: pointers borrowed from ``plan``)
    cdef ormcache_step steps[MAX_INDICES]
    cdef Py_ssize_t n_steps
    cdef bint expr_lost
    # the plan's attribute reads: what each one did on the last object's type (_cache_keys.h)
    cdef ormcache_attr plan_attrs[ORMCACHE_MAX_ATTRS]
    # and each step's last frozenset(tuple), reused for the same tuple (strong references)
    cdef ormcache_memo plan_memos[MAX_INDICES]
    # ormcache_context: the context keys, and where the context comes from (KeyFunction)
    cdef tuple context_keys
    cdef Py_ssize_t context_index
    # the context's share of the last key: reused while the context's values are the same
    # objects (no tuple to build, and the stored key holds this very tuple: compared by identity)
    cdef tuple context_part
    # and the context dict it was read from, at that dict's version (0: none; see
    # ormcache_dict_version): the same dict at the same version gives the same part
    cdef PyObject* context_seen
    cdef unsigned long long context_version
    # and that dict's type at its version tag (a dict, or a subclass that keeps dict's get):
    # compared (the type is dereferenced only once it is known to be the context's own)
    cdef PyObject* context_type
    cdef unsigned int context_type_tag
    # ormcache_multi: the position of the ids (-1: not a multi), the Python wrapper serving
    # the calls the fast path does not, and the start of the KeyError of an id left out
    cdef Py_ssize_t multi_position
    cdef object multi_fallback
    cdef object multi_name

    def __cinit__(self):
        self._vectorcall = <void*>_cached_vectorcall
        self.flights = {}
        self.table = _EMPTY_TABLE
        self.epoch = _epoch

    def __init__(self, spec, multi_fallback=None):
        """``spec``: an ``ormcache._spec.MethodSpec`` (built by the decorator); for an
        ``ormcache_multi`` spec, ``multi_fallback`` serves the calls the C path does not."""
        # Runs once: the key layout (indices, argument counts) is read by the call path without
        # a lock and must not change under a call (an argument's __hash__ could re-run this).
        if self.func is not None:
            raise RuntimeError("CachedMethod.__init__ called twice")
        if not isinstance(spec, _MethodSpec):
            raise TypeError(f"CachedMethod: spec must be an ormcache MethodSpec, not {type(spec).__qualname__}")
        cdef Py_ssize_t indices[MAX_INDICES]
        cdef Py_ssize_t i, n = 0
        key = spec.key
        func = spec.func
        if func is None:
            raise TypeError("CachedMethod: spec.func is None")
        min_args = key.min_args
        max_args = key.max_args if key.max_args >= 0 else (<Py_ssize_t>1 << 62)
        if min_args < 0:
            raise ValueError(f"CachedMethod: min_args must be >= 0, not {min_args!r}")
        fast = key.indices is not None and len(key.indices) <= MAX_INDICES
        if fast:
            for index in key.indices:
                # the fast path reads args[index] for calls of at least min_args arguments
                if not 0 <= index < min_args or n >= MAX_INDICES:
                    raise ValueError(f"CachedMethod: key index {index!r} outside the {min_args} required arguments")
                indices[n] = index
                n += 1
        # everything checked: publish it at once, with no user code in between
        for i in range(n):
            self.indices[i] = indices[i]
        self.n_indices = n
        self.fast = fast
        context_keys = key.context_keys
        context_index = key.context_index
        if context_keys is not None:
            context_keys = tuple(context_keys)
            if fast and not -1 <= context_index < min_args:
                raise ValueError(f"CachedMethod: context index {context_index!r} outside the {min_args} required arguments")
        self.context_keys = context_keys
        self.context_index = context_index
        if spec.multi is not None and spec.multi_position < 0:
            raise ValueError("CachedMethod: an ormcache_multi method whose ids are not positional is served by its Python wrapper")
        if spec.multi_position >= 0:
            if not callable(multi_fallback) or spec.flights is None:
                raise TypeError("CachedMethod: an ormcache_multi spec needs its flights and a callable multi_fallback")
            self.multi_fallback = multi_fallback
            self.multi_name = spec.multi_name
            self.flights = spec.flights  # shared with the fallback: one single flight
        self.multi_position = spec.multi_position
        self.scratch = (None,) * (n + 2 + (context_keys is not None)) if fast else None
        self.min_args = min_args
        self.max_args = max_args
        self.key_function = key.function
        plan = key.plan
        if plan is not None and not fast and context_keys is None and len(plan) <= MAX_INDICES:
            steps = []
            for i, (position, default, names, call) in enumerate(plan):
                if not 0 <= position < max_args:
                    raise ValueError(f"CachedMethod: plan position {position!r} outside the positional arguments")
                self.plan_positions[i] = position
                steps.append((default, tuple(names), call))
            self.plan = tuple(steps)
            ormcache_steps_init(self.steps, self.plan, self.plan_positions)
            self.n_steps = len(self.plan)
        self.cache_name = spec.cache_name
        self.static_model = spec.model
        self.has_owner = spec.has_owner
        self.func = func

    def __get__(self, obj, objtype):
        if obj is None:
            return self
        return PyMethod_New(self, obj)

    def __dealloc__(self):
        ormcache_memos_clear(self.plan_memos, MAX_INDICES)

    def __call__(self, *args, **kwargs):
        # tp_call (rarely used: CPython prefers vectorcall); same path through a flat vector
        cdef tuple vector, names
        if not kwargs:
            return _cached_call(self, PySequence_Fast_ITEMS(args), len(args), NULL)
        vector = args + tuple(kwargs.values())
        names = tuple(kwargs)
        return _cached_call(self, PySequence_Fast_ITEMS(vector), len(args), <PyObject*>names)

    def __repr__(self):
        return f"<ormcache wrapper of {getattr(self.func, '__qualname__', self.func)!r}>"

    cdef void _resolve_env(self, _Slot slot, object owner, object owner_type) except *:
        """Odoo's record shape: ``env`` a ``__slots__`` entry, read at its offset; and how the
        type of this owner's env reads ``context`` (the env of later calls is checked against it)."""
        cdef PyObject* class_context = NULL
        cdef PyObject* unused = NULL
        cdef unsigned int tag = 0
        cdef int kind
        cdef Py_ssize_t offset = ormcache_member_offset(owner_type, "env")
        if offset <= 0 or ormcache_type_tag(owner_type) != slot.tag:
            return
        env = getattr(owner, "env", None)  # a member descriptor: no user code
        if ormcache_type_tag(owner_type) != slot.tag:
            return
        slot.env_offset = offset
        if env is None:
            return
        env_type = type(env)
        kind = ormcache_owner_kind(env_type, "context", "context", &class_context, &unused, &tag)
        if kind:
            slot.env_class_context = <object>class_context if class_context != NULL else None
            slot.env_type = env_type
            slot.env_tag = tag
            slot.env_kind = kind

    cdef _Slot _resolve(self, object owner, object pool, object mkey):
        cdef _Slot slot = _Slot.__new__(_Slot)
        cdef PyObject* class_pool = NULL
        cdef PyObject* class_name = NULL
        cdef unsigned int tag = 0
        cdef int kind
        slot.pool = pool
        slot.mkey = mkey
        slot.registry, slot.model, slot.lru, slot.counter = _resolve(pool, mkey, self.func, self.cache_name, Counter)
        slot.known = _get_known != NULL and type(slot.lru) is _engine_lru
        if _fold_ok and ormcache_constant_hash(<PyObject*>slot.model) and ormcache_constant_hash(<PyObject*>self.func):
            slot.prefix = ormcache_fold(ormcache_fold(ormcache_fold_start(), hash(slot.model)), hash(self.func))
            slot.prefixed = True
        owner_type = type(owner)
        if self.has_owner and not isinstance(owner, type):
            kind = ormcache_owner_kind(owner_type, "pool", "_name", &class_pool, &class_name, &tag)
            # no user code since the lookups: the borrowed attributes are still the class's
            slot.class_pool = <object>class_pool if class_pool != NULL else None
            slot.class_name = <object>class_name if class_name != NULL else None
            # without an instance dict, the type decides alone: it must give this very slot
            if kind == 2 or (kind == 1 and slot.class_pool is pool
                             and (owner_type if slot.class_name is None else slot.class_name) is mkey):
                slot.kind = kind
                slot.tag = tag
                slot.owner_type = owner_type
                if kind == 1 and self.context_keys is not None and self.context_index < 0:
                    # the owner's context (keys.context_of) from the class alone, if it can tell
                    if (ormcache_owner_kind(owner_type, "env", "_context", &class_pool, &class_name, &tag) == 1
                            and tag == slot.tag):
                        slot.class_env = <object>class_pool if class_pool != NULL else None
                        slot.class_context = <object>class_name if class_name != NULL else None
                        slot.context_by_type = True
                    else:
                        self._resolve_env(slot, owner, owner_type)
        with cython.critical_section(self):
            if self.epoch != _epoch:
                self.table = _EMPTY_TABLE
                self.epoch = _epoch
            slots = self.table.slots
        # the slots this one replaces (same pool, model key and type) are dropped; past
        # MAX_SLOTS the method starts over (classes made by the thousand are not kept alive)
        kept = [old for old in slots if not ((<_Slot>old).pool is pool and (<_Slot>old).mkey is mkey
                                             and (<_Slot>old).owner_type is slot.owner_type)]
        table = _new_table((slot, *kept) if len(kept) < MAX_SLOTS else (slot,))
        with cython.critical_section(self):
            if self.epoch == _epoch and self.table.slots is slots:
                self.table = table
            # else another thread published meanwhile (or a registry was deleted): this call is
            # served by its slot all the same; a later call resolves again if it must
        return slot


cdef object _multi_call(CachedMethod self, _Slot slot, PyObject** args, Py_ssize_t nargs):
    """``ormcache_multi``'s hits: one probe key ``(model, method, *exprs, id)`` refilled per id
    (a new one when someone kept it); the missing ids go to ``_cold.multi_rest``."""
    cdef Py_ssize_t n = self.n_indices
    cdef dict result = {}
    cdef dict missed = None
    cdef PyObject* found
    cdef int failure, got
    cdef Py_hash_t h
    cdef object probe = None
    cdef object value, error
    for id_ in <object>args[self.multi_position]:
        if probe is None or not ormcache_scratch_free(<PyObject*>probe):
            probe = PyTuple_New(n + 3)
            ormcache_fill(<PyObject*>probe, <PyObject*>slot.model, <PyObject*>self.func, args, self.indices, n)
        ormcache_fill_item(<PyObject*>probe, n + 2, <PyObject*>id_)
        if slot.known:  # the engine's C lookup, with the hash folded here (as _cached_call)
            h = _hash_key(slot, probe, args, self.indices, n, <PyObject*>id_)
            found = NULL
            got = _get_known(<PyObject*>slot.lru, <PyObject*>probe, h, &found) if h != -1 else -1
            failure = 1 if got >= 0 else ormcache_error_kind()
        else:
            found = PyObject_GetItem(slot.lru, probe)
            if found == NULL:
                failure = ormcache_lookup_failure(<PyObject*>probe)
        if found != NULL:
            value = ormcache_steal(found)
            result[id_] = value
            slot.counter.hit += 1
            continue
        if failure < 0:  # KeyboardInterrupt...: propagates, nothing computed
            raise_pending()
        if missed is None:
            missed = {}
        if failure:
            slot.counter.miss += 1
            missed[id_] = ormcache_hashed(<PyObject*>probe)
        else:  # the cache cannot take this key: computed, never stored
            error = ormcache_fetch_error()
            _lookup_failed(self.func, slot.counter, ormcache_hashed(<PyObject*>probe), error)
            error = None
            missed[id_] = None
    if missed:
        return _multi_rest(self.func, self.flights, slot.registry, slot.lru, slot.counter, missed, result,
                           _positional(args, nargs), self.multi_position, self.multi_name)
    return result


# the context of a call without one (``{}`` in ``keys.context_of``); never changed
cdef dict _NO_CONTEXT = {}


cdef tuple _context_part(CachedMethod self, _Slot slot, PyObject** args):
    """``keys.context_part`` of the call's context: the compiled twin of the key function's
    ``(context or {})`` (the ``context`` argument) or ``context_of(owner)``."""
    cdef tuple keys = self.context_keys
    cdef Py_ssize_t i, j, n = len(keys)
    cdef tuple part = None
    cdef tuple last
    cdef object context, env, value, item
    cdef bint by_type, same_type, exact
    cdef unsigned long long version
    cdef PyObject* found
    cdef PyObject* found_too
    cdef PyObject* raw
    cdef int got, absent
    if (self.context_index < 0 and slot.env_kind == 2 and slot.env_offset
            and Py_TYPE_raw(args[0]) == <PyObject*>slot.owner_type
            and ormcache_type_tag(slot.owner_type) == slot.tag):
        # Odoo's record shape, its env's context unchanged since the last call (the env's dict
        # and the context dict at the versions seen): the last part, with borrowed pointers only
        raw = ormcache_member_read(args[0], slot.env_offset)
        if (raw != NULL and Py_TYPE_raw(raw) == <PyObject*>slot.env_type
                and ormcache_type_tag(slot.env_type) == slot.env_tag):
            raw = ormcache_seen_attr(raw, &slot.env_seen, &absent)
            if raw != NULL:
                with cython.critical_section(self):
                    if (Py_TYPE_raw(raw) == self.context_type
                            and ormcache_same_dict(raw, self.context_seen, self.context_version)
                            and ormcache_type_tag(<object>self.context_type) == self.context_type_tag):
                        return self.context_part
    if self.context_index >= 0:
        context = <object>args[self.context_index]
        if not context:
            context = _NO_CONTEXT
    else:
        owner = <object>args[0]
        same_type = (Py_TYPE_raw(args[0]) == <PyObject*>slot.owner_type
                     and ormcache_type_tag(slot.owner_type) == slot.tag)
        # no instance dict (kind 1): the class's env and _context are the owner's
        by_type = slot.context_by_type and same_type
        if by_type:
            env = slot.class_env
        elif slot.env_offset and same_type:  # env a __slots__ entry (Odoo's records)
            found = ormcache_member_read(args[0], slot.env_offset)
            env = <object>found if found != NULL else None
        else:
            env = getattr(owner, "env", None)
        context = None
        if env is None:
            pass
        elif (slot.env_kind and Py_TYPE_raw(<PyObject*>env) == <PyObject*>slot.env_type
                and ormcache_type_tag(slot.env_type) == slot.env_tag):
            if slot.env_kind == 1:  # no instance dict: the class attribute
                context = slot.env_class_context
            else:  # the env's instance dict, else the class attribute
                got = ormcache_instance_attrs(<PyObject*>env, "context", "context", &slot.env_seen, &found, &found_too)
                if got < 0:
                    raise_pending()
                if got:
                    if found_too != NULL:
                        ormcache_steal(found_too)  # the same object, a second reference: dropped
                    context = ormcache_steal(found) if found != NULL else slot.env_class_context
                else:
                    context = getattr(env, "context", None)
        else:
            context = getattr(env, "context", None)
        if context is None:
            # (the getattr on env may have changed the class: the version tag tells)
            if by_type and ormcache_type_tag(slot.owner_type) == slot.tag:
                context = slot.class_context
            else:
                context = getattr(owner, "_context", None)
        if context is None:
            context = _NO_CONTEXT
    with cython.critical_section(self):
        last = self.context_part
        # the dict of the last call, unchanged, of the same type (unchanged): the same part
        if (Py_TYPE_raw(<PyObject*>context) == self.context_type
                and ormcache_same_dict(<PyObject*>context, self.context_seen, self.context_version)
                and ormcache_type_tag(<object>self.context_type) == self.context_type_tag):
            return last
    exact = ormcache_plain_dict(context, "get")
    version = ormcache_version_or_zero(<PyObject*>context) if exact else 0
    for i in range(n):
        if exact:
            value = (<dict>context).get(keys[i])
        else:
            value = context.get(keys[i])
        if part is None:
            if last is not None and PyTuple_GET_ITEM_raw(last, i) == <PyObject*>value:
                continue  # the same value as the last part's so far
            part = PyTuple_New(n)
            for j in range(i):
                item = <object>PyTuple_GET_ITEM_raw(last, j)
                Py_INCREF(item)
                PyTuple_SET_ITEM(part, j, item)
        Py_INCREF(value)
        PyTuple_SET_ITEM(part, i, value)
    if part is None:  # every value is the last part's (or there are no context keys)
        part = last if last is not None else ()
    else:  # a key part of its own, hashed once (a HashedKey: equal to and hashed as the tuple)
        part = <tuple>ormcache_hashed(<PyObject*>part)
    with cython.critical_section(self):
        self.context_part = part
        self.context_seen = <PyObject*>context if exact else NULL  # compared, never dereferenced
        self.context_version = version
        # a type without a version tag (0) cannot tell a change: nothing remembered then
        self.context_type_tag = ormcache_type_tag(type(context)) if exact else 0
        self.context_type = Py_TYPE_raw(<PyObject*>context) if self.context_type_tag else NULL
    return part


cdef inline Py_hash_t _hash_key(_Slot slot, object key, PyObject** args, const Py_ssize_t* indices, Py_ssize_t n,
                                PyObject* tail) noexcept:
    """hash(key) of the filled probe ``key`` = (model, func, *args[indices], [tail]) (``tail``
    NULL: none): folded from the slot's prefix when it may be (only the arguments' hashes
    computed, in order, as tuple.__hash__ does), else the tuple's own; -1 with the exception of
    a failing __hash__."""
    cdef Py_uhash_t acc
    cdef Py_hash_t lane
    cdef Py_ssize_t i
    if not slot.prefixed:
        return PyObject_Hash_raw(<PyObject*>key)
    acc = slot.prefix
    for i in range(n):
        lane = ormcache_item_hash(args[indices[i]])
        if lane == -1:
            return -1
        acc = ormcache_fold(acc, lane)
    if tail == NULL:
        return ormcache_fold_end(acc, n + 2)
    lane = ormcache_part_hash(tail)
    if lane == -1:
        return -1
    return ormcache_fold_end(ormcache_fold(acc, lane), n + 3)


cdef object _cached_vectorcall(PyObject* callable, PyObject** args, size_t nargsf, PyObject* kwnames):
    # the C signature of vectorcall: a "cdef object" function returns a new reference, or NULL
    # with the exception set
    return _cached_call(<CachedMethod>callable, args, PyVectorcall_NARGS(nargsf), kwnames)


cdef inline object _cached_call(CachedMethod self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef object owner, pool, mkey, key, tail, item
    cdef _Table table
    cdef _Slot slot
    cdef PyObject* found
    cdef PyObject* candidate  # borrowed from ``table``: no reference counting in the search
    cdef PyObject* owner_type
    cdef PyObject* by_type
    cdef PyObject* own_pool
    cdef PyObject* own_name
    cdef unsigned int tag
    cdef int kind
    cdef Py_ssize_t i, n
    cdef bint keywords = kwnames != NULL and len(<tuple>kwnames) > 0
    cdef int failure, got
    cdef Py_hash_t h
    if self.func is None:
        raise TypeError("CachedMethod not initialised")
    with cython.critical_section(self):
        table = self.table
        if self.epoch != _epoch:  # a registry was deleted: forget them all
            table = self.table = _EMPTY_TABLE
            self.epoch = _epoch
    found = NULL
    if self.has_owner:
        if nargs == 0:  # no owner: let the method report the missing argument
            return self.func(*_positional(args, nargs), **_keywords(args, nargs, kwnames))
        owner_type = Py_TYPE_raw(args[0])
        # the owner's type tells how to read pool and _name (while its version tag is the slot's)
        by_type = ormcache_type_slot(table.types, table.mask, owner_type)
        if by_type != NULL and (<_Slot>by_type).tag != ormcache_type_tag(<object>owner_type):
            by_type = NULL
        kind = 0
        if by_type != NULL:
            kind = (<_Slot>by_type).kind
            if kind == 1:  # no instance dict: the type alone decides, no attribute read at all
                found = by_type
            else:  # the instance dict's own entries, else the class attributes
                kind = ormcache_instance_attrs(args[0], "pool", "_name", &(<_Slot>by_type).seen, &own_pool, &own_name)
                if kind < 0:
                    raise_pending()
                if kind:
                    pool = ormcache_steal(own_pool) if own_pool != NULL else (<_Slot>by_type).class_pool
                    mkey = ormcache_steal(own_name) if own_name != NULL else (<_Slot>by_type).class_name
                    if mkey is None:
                        mkey = <object>owner_type
                    if (<_Slot>by_type).pool is pool and (<_Slot>by_type).mkey is mkey:
                        found = by_type
                    owner = <object>args[0]
        if not kind:
            owner = <object>args[0]
            pool = getattr(owner, "pool", None)
            mkey = getattr(owner, "_name", None)
            if mkey is None:
                mkey = owner if isinstance(owner, type) else <object>owner_type
    else:
        owner = None
        pool = None
        mkey = self.static_model
    if found == NULL and len(table.slots):  # the most recent slot, else any by identities
        candidate = PyTuple_GET_ITEM_raw(table.slots, 0)
        if (<_Slot>candidate).pool is pool and (<_Slot>candidate).mkey is mkey:
            found = candidate
        else:
            item = table.pairs.get((id(pool), id(mkey)))
            if item is not None and (<_Slot>item).pool is pool and (<_Slot>item).mkey is mkey:
                found = <PyObject*>item
    if found != NULL:
        slot = <_Slot>found
    else:
        slot = self._resolve(owner, pool, mkey)
    if self.multi_position >= 0:  # ormcache_multi: ids looked up here for a positional call
        if self.fast and not keywords and self.min_args <= nargs <= self.max_args and self.multi_position < nargs:
            return _multi_call(self, slot, args, nargs)
        return self.multi_fallback(*_positional(args, nargs), **_keywords(args, nargs, kwnames))
    if self.fast and not keywords and self.min_args <= nargs <= self.max_args:
        n = self.n_indices
        tail = _context_part(self, slot, args) if self.context_keys is not None else None
        if self.scratch is not None and ormcache_scratch_free(<PyObject*>self.scratch):
            key = self.scratch  # ours alone: 2 references (the field and this one)
            ormcache_fill(<PyObject*>key, <PyObject*>slot.model, <PyObject*>self.func, args, self.indices, n)
            if tail is not None:  # ormcache_context: the context's values, one nested tuple
                ormcache_fill_item(<PyObject*>key, n + 2, <PyObject*>tail)
            failure = 1
            error = None
            found = NULL
            h = -1
            if slot.known:  # the engine's C lookup, with the hash folded here
                h = _hash_key(slot, key, args, self.indices, n, <PyObject*>tail if tail is not None else NULL)
                if h != -1:
                    got = _get_known(<PyObject*>slot.lru, <PyObject*>key, h, &found)
                else:  # a key item's __hash__ failed: a lookup error, as the engine's hash would
                    got = -1
                if got < 0:
                    failure = ormcache_error_kind()
                    error = ormcache_fetch_error()
            else:
                found = PyObject_GetItem(slot.lru, key)
                if found == NULL:
                    # off the error indicator before the reference count is read (the engine's
                    # KeyError holds the key), and so the method's own errors do not chain to it
                    failure = ormcache_lookup_failure(<PyObject*>key)  # reads the probe's identity only
                    if failure != 1:
                        error = ormcache_fetch_error()
            if Py_REFCNT(<PyObject*>key) == 2:
                ormcache_unfill(<PyObject*>key, n)
            else:  # someone kept it (a key's __eq__ looking around): leave it to them
                self.scratch = None
            if found != NULL:
                slot.counter.hit += 1
                if self.awaited:
                    return _awaited_value(ormcache_steal(found))
                return ormcache_steal(found)
            if failure < 0:  # KeyboardInterrupt...: propagates, nothing computed
                raise error
            key = ormcache_hashed(<PyObject*>key)  # a key of its own, to store or to report
            ormcache_fill(<PyObject*>key, <PyObject*>slot.model, <PyObject*>self.func, args, self.indices, n)
            if failure:
                if self.awaited:
                    return _await_miss(self.func, self.flights, slot.registry, slot.lru, slot.counter, key,
                                       _positional(args, nargs), _keywords(args, nargs, kwnames))
                return _miss(self, slot, key, _positional(args, nargs), _keywords(args, nargs, kwnames))
            return _uncached(self.func, slot.counter, key, error, _positional(args, nargs), _keywords(args, nargs, kwnames))
        key = PyTuple_New(n + 2 + (tail is not None))
        Py_INCREF(slot.model)
        PyTuple_SET_ITEM(key, 0, slot.model)
        Py_INCREF(self.func)
        PyTuple_SET_ITEM(key, 1, self.func)
        for i in range(n):
            item = <object>args[self.indices[i]]
            Py_INCREF(item)
            PyTuple_SET_ITEM(key, i + 2, item)
        if tail is not None:  # ormcache_context: the context's values, one nested tuple
            Py_INCREF(tail)
            PyTuple_SET_ITEM(key, n + 2, tail)
    else:
        if self.plan is not None and not keywords and self.min_args <= nargs <= self.max_args:
            if slot.known:  # the values evaluated straight into the method's probe tuple
                if self.expr_scratch is None and not self.expr_lost:
                    self.expr_scratch = (None,) * (self.n_steps + 2)
                if (self.expr_scratch is not None and len(self.expr_scratch) == self.n_steps + 2
                        and ormcache_scratch_free(<PyObject*>self.expr_scratch)):
                    return _plan_call(self, slot, args, nargs, kwnames)
            # without the lambda's frame
            found = ormcache_plan_values(self.steps, self.n_steps, args, nargs, self.plan_attrs, self.plan_memos)
            if found == NULL:
                raise_pending()
            tail = ormcache_steal(found)
        else:
            # the compiled key lambda, called with the very same argument vector
            found = PyObject_Vectorcall(self.key_function, args, <size_t>nargs, kwnames)
            if found == NULL:
                raise_pending()
            tail = ormcache_steal(found)
        if type(tail) is tuple and slot.known and len(<tuple>tail) <= MAX_INDICES:
            n = len(<tuple>tail)
            if self.expr_scratch is None and not self.expr_lost:
                self.expr_scratch = (None,) * (n + 2)
            if (self.expr_scratch is not None and len(self.expr_scratch) == n + 2
                    and ormcache_scratch_free(<PyObject*>self.expr_scratch)):
                return _expr_call(self, slot, <tuple>tail, args, nargs, kwnames)
        key = (slot.model, self.func) + <tuple?>tail
    found = PyObject_GetItem(slot.lru, key)
    if found != NULL:
        slot.counter.hit += 1
        if self.awaited:
            return _awaited_value(ormcache_steal(found))
        return ormcache_steal(found)
    failure = ormcache_lookup_failure(<PyObject*>key)
    if failure < 0:
        raise_pending()
    if failure and self.awaited:
        return _await_miss(self.func, self.flights, slot.registry, slot.lru, slot.counter, ormcache_hashed(<PyObject*>key),
                           _positional(args, nargs), _keywords(args, nargs, kwnames))
    if failure:
        return _miss(self, slot, ormcache_hashed(<PyObject*>key), _positional(args, nargs), _keywords(args, nargs, kwnames))
    # taken off the error indicator, so the method's own errors do not chain to the lookup's
    error = ormcache_fetch_error()
    return _uncached(self.func, slot.counter, key, error, _positional(args, nargs), _keywords(args, nargs, kwnames))


# positions 0..MAX_INDICES-1: the key lambda's values are taken in order (``_expr_call``)
cdef Py_ssize_t _IN_ORDER[MAX_INDICES]
for _i in range(MAX_INDICES):
    _IN_ORDER[_i] = _i


cdef object _expr_call(CachedMethod self, _Slot slot, tuple values, PyObject** args, Py_ssize_t nargs,
                       PyObject* kwnames):
    """An expression-key call (``values``: the key lambda's tuple, at most MAX_INDICES items):
    the probe ``(model, method, *values)`` refilled in the method's own tuple, then
    ``_scratch_call``."""
    key = self.expr_scratch  # ours alone: 2 references (the field and this one)
    ormcache_fill(<PyObject*>key, <PyObject*>slot.model, <PyObject*>self.func, PySequence_Fast_ITEMS(values),
                  _IN_ORDER, len(values))
    return _scratch_call(self, slot, key, len(values), args, nargs, kwnames)


cdef inline object _plan_call(CachedMethod self, _Slot slot, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """A key-plan call (``keys.KeyFunction.plan``): ``(model, method, *values)`` evaluated
    straight into the method's own probe tuple (no tuple of values made and freed), the
    attributes read through the plan's attribute cache; then ``_scratch_call``."""
    key = self.expr_scratch  # ours alone: 2 references (the field and this one)
    # user code may run here (a property): a re-entrant call finds the tuple in use (3 references)
    if ormcache_plan_fill(<PyObject*>key, <PyObject*>slot.model, <PyObject*>self.func, self.steps, self.n_steps,
                          args, nargs, self.plan_attrs, self.plan_memos) < 0:
        if Py_REFCNT(<PyObject*>key) != 2:  # someone kept it: leave it to them
            self.expr_scratch = None
            self.expr_lost = True
        raise_pending()
    return _scratch_call(self, slot, key, self.n_steps, args, nargs, kwnames)


cdef inline object _scratch_call(CachedMethod self, _Slot slot, object key, Py_ssize_t n, PyObject** args,
                                 Py_ssize_t nargs, PyObject* kwnames):
    """The method's own probe tuple ``key`` (``(model, method, *n values)``, filled by
    ``_expr_call`` or ``_plan_call``): its hash folded from the slot's prefix, one C lookup in the
    engine (as the fast path's hit), the tuple emptied for the next call; anything but a plain
    hit goes to ``_scratch_rest``."""
    cdef PyObject* found = NULL
    cdef int got = -1
    cdef Py_hash_t h = _hash_key(slot, key, &PySequence_Fast_ITEMS(key)[2], _IN_ORDER, n, NULL)
    if h != -1:
        got = _get_known(<PyObject*>slot.lru, <PyObject*>key, h, &found)
    if found != NULL and Py_REFCNT(<PyObject*>key) == 2:
        ormcache_unfill(<PyObject*>key, n)
        slot.counter.hit += 1
        if self.awaited:
            return _awaited_value(ormcache_steal(found))
        return ormcache_steal(found)
    return _scratch_rest(self, slot, key, n, got, found, args, nargs, kwnames)


cdef object _scratch_rest(CachedMethod self, _Slot slot, object key, Py_ssize_t n, int got, PyObject* found,
                          PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """``_scratch_call`` past its plain hit: ``got`` < 0 (the lookup's error pending, or a key
    item's failed __hash__, as the engine's hash would fail), a miss, or a hit (``found``, a
    reference handed over) whose probe someone kept (a key's __eq__ looking around): the miss
    or the error goes where ``_cached_call``'s would, with a key of its own."""
    cdef int failure = 1
    cdef object error = None
    cdef object stored = None
    if got < 0:
        failure = ormcache_error_kind()
        error = ormcache_fetch_error()
    if found == NULL and failure >= 0:
        stored = ormcache_hashed(<PyObject*>key)  # a key of its own (with the values), to store or to report
    if Py_REFCNT(<PyObject*>key) == 2:
        ormcache_unfill(<PyObject*>key, n)
    else:  # someone kept it: leave it to them
        self.expr_scratch = None
        self.expr_lost = True
    if found != NULL:
        slot.counter.hit += 1
        if self.awaited:
            return _awaited_value(ormcache_steal(found))
        return ormcache_steal(found)
    if failure < 0:  # KeyboardInterrupt...: propagates, nothing computed
        raise error
    if failure:
        if self.awaited:
            return _await_miss(self.func, self.flights, slot.registry, slot.lru, slot.counter, stored,
                               _positional(args, nargs), _keywords(args, nargs, kwnames))
        return _miss(self, slot, stored, _positional(args, nargs), _keywords(args, nargs, kwnames))
    return _uncached(self.func, slot.counter, stored, error, _positional(args, nargs), _keywords(args, nargs, kwnames))


# -- the miss: the compiled twin of ``_cold.miss`` ---------------------------------------------

cdef extern from "_cache_compat.h":
    object ormcache_setdefault(object d, object key, object value)


@cython.final
@cython.freelist(8)
cdef class Flight:
    """One computation in progress: the declared compiled twin of ``fastlru._flight.Flight`` (the
    same attributes, read and written by that module's functions: ``claim``, ``join``, ``land``,
    ``drop``; the same tests run on both, tests/ormcache/test_flight21_twin.py)."""

    cdef public unsigned long thread
    cdef public object lock
    cdef public object value
    cdef public bint stored
    cdef public bint landed


cpdef Flight new_flight(unsigned long me):
    """A new flight of thread ``me``: the twin of ``fastlru._flight.new_flight``."""
    cdef Flight flight = Flight.__new__(Flight)
    flight.thread = me
    return flight


# free-threaded builds land a flight under ``fastlru._flight._guard`` (``land``); read once
cdef bint _land_guarded = _LAND_GUARDED

# ``_bench`` only: misses skip their single flight, to time what the flight costs (the same
# compiled miss otherwise; see ``_bench_without_flight``)
cdef bint _no_flight = False


def _bench_without_flight(bint on):
    """For ``ormcache._bench`` only: while ``on``, a miss computes and stores without its single
    flight (no Flight, no flights table, no landing): the bare miss the bookkeeping is timed against."""
    global _no_flight
    _no_flight = on


cdef object _miss(CachedMethod self, _Slot slot, object key, tuple args, dict kwargs):
    """The key (a ``HashedKey``) is not cached: compute it once for all concurrent callers,
    store it, return it (``_cold.miss``'s rules; a caller that finds another's flight is
    served by ``_cold.follow``). The key is hashed here, once, and never again by the flight
    table, the store or the flight removal."""
    cdef Flight flight
    cdef object current, fkey, value
    cdef unsigned long me
    cdef bint single
    cdef dict flights = self.flights  # an async def's (AsyncFlights) never reach here
    cdef PyObject* found = NULL
    cdef int got
    try:
        hash(key)
    except Exception as exc:  # the cache never fails the call
        return _uncached(self.func, slot.counter, key, exc, args, kwargs)
    if _no_flight:
        return _compute(self, slot, key, args, kwargs, None)
    me = PyThread_get_thread_ident()
    with cython.critical_section(self):
        if self.flight_lru == NULL:
            self.flight_lru = <PyObject*>slot.lru
        # one table key per (LRU, key), fixed for the method's life: the key alone (no tuple to
        # make and hash: its hash is kept) for the LRU of its first miss, as most methods serve
        # one database; a live LRU's address is never another live one's, and a HashedKey (a
        # model name first) never equals an (int, key) pair
        single = self.flight_lru == <PyObject*>slot.lru
    fkey = key if single else (id(slot.lru), key)
    while True:
        flight = new_flight(me)
        current = ormcache_setdefault(flights, fkey, flight)
        if current is not flight and current.landed:
            current = _claim(flights, fkey, flight)  # one left landed by a failed removal: replaced
        if current is flight:
            break
        value = _follow(current, me, self.func, slot.lru, slot.counter, key, args, kwargs)
        if value is not _AGAIN:
            return value
    try:
        # a flight that ended since this caller missed stored its value: single flight is single
        # (``_cold.recheck``; the engine's own LRU through its C peek, the key's hash is kept)
        if slot.known:
            got = _peek_known(<PyObject*>slot.lru, <PyObject*>key, hash(key), &found)
            if got < 0 and ormcache_error_kind() < 0:  # KeyboardInterrupt...: propagates
                raise_pending()
            value = ormcache_steal(found) if got > 0 else _AGAIN
            if got < 0:
                PyErr_Clear()  # the cache refuses it now: computed, as a miss
        else:
            value = _recheck(slot.lru, key)
        if value is not _AGAIN:
            slot.counter.hit += 1
            flight.value = value
            flight.stored = True
            return value
        return _compute(self, slot, key, args, kwargs, flight)
    finally:
        # ``fastlru._flight.drop``: remove it, then land it whatever the removal did (a colliding key's
        # ``__eq__`` may raise there: it stays landed, replaced by the next miss). Under this
        # key the table holds this flight until it lands (only a landed one is replaced).
        try:
            flights.pop(fkey, None)  # callers from now on find the value in the cache
        except Exception:
            pass
        finally:
            if _land_guarded:
                _land(flight)
            else:  # ``fastlru._flight.land``: under the GIL nothing runs between these steps
                flight.landed = True
                if flight.lock is not None:
                    flight.lock.release()


cdef object _compute(CachedMethod self, _Slot slot, object key, tuple args, dict kwargs, Flight flight):
    """Compute, time and store (``_cold.store``) a missed key; publish the value to ``flight``'s
    waiters (None: no flight) when it is stored."""
    cdef Counter counter = slot.counter
    cdef double start
    counter.miss += 1
    generation = slot.registry.generation
    start = _perf_counter()
    try:
        value = self.func(*args, **kwargs)
    finally:
        counter.gen_time += _perf_counter() - start
    if _store(self.func, slot.registry, slot.lru, counter, key, value, generation) and flight is not None:
        flight.value = value
        flight.stored = True
    return value


HashedKey = ormcache_key_type()


def cached_method(spec, multi_fallback=None):
    """The caching wrapper described by ``spec`` (an ``ormcache._spec.MethodSpec``, built by the
    decorator)."""
    from functools import update_wrapper  # at decoration, not at import (issue #21: import cost)

    wrapper = CachedMethod(spec, multi_fallback)
    update_wrapper(wrapper, spec.func)
    return wrapper


def cached_multi(spec, multi_fallback):
    """``ormcache_multi``'s wrapper: positional calls served here, others by
    ``multi_fallback`` (the twin's wrapper, ``_cache_py.cached_multi``, sharing ``spec.flights``)."""
    return cached_method(spec, multi_fallback)


# -- async def methods: a hit is a coroutine that is already done --------------------------------

# fastlru's AwaitedValue (fastlru._functools_c), made through the function its capsule holds
ctypedef object (*_awaited_func)(object)
cdef _awaited_func _awaited_value = <_awaited_func>PyCapsule_GetPointer(_awaited_capi, "fastlru._functools_c.awaited_value")


def cached_coroutine(spec):
    """The caching wrapper of an ``async def`` method (``ormcache``/``ormcache_context``): the
    compiled hit path, whose hit returns a ``fastlru._functools_c.AwaitedValue`` (a coroutine
    already done, no Python frame); a miss is ``_async.await_miss``
    (single flight per event loop in ``spec``'s ``AsyncFlights``). The wrapper is function-like
    (``__code__`` is the method's), so ``inspect.iscoroutinefunction`` holds; Python 3.9's
    ``inspect`` knows functions only: there, the pure-Python ``async def`` wrapper."""
    if sys.version_info < (3, 10):
        return _cached_coroutine_py(spec)
    cdef CachedMethod wrapper = CachedMethod(spec)
    wrapper.flights = AsyncFlights()
    wrapper.awaited = True
    return function_like(wrapper, spec.func)


cdef void _enable_vectorcall():
    # the offset of the function pointer in an instance, measured on one
    cdef CachedMethod probe = CachedMethod.__new__(CachedMethod)
    ormcache_enable_vectorcall(CachedMethod, <Py_ssize_t>(<char*>&probe._vectorcall - <char*><void*>probe))


_enable_vectorcall()
DELETE_HOOKS.append(forget_registries)
