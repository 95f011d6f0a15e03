# cython: language_level=3, freethreading_compatible=True
"""Compiled ``lru_cache``/``cache`` wrapper on the compiled ``fastlru.LRU``;
``_functools_py.py`` is its pure-Python twin with the same names and behaviour.

The wrapper is called through vectorcall (as CPython's own lru_cache wrapper): no argument
tuple or dict is built for a call. A hit builds the key as ``functools._make_key`` does (a
lone ``int``/``str`` argument is its own key; else the arguments, a marker and the keyword
items, in a key object that hashes them once), then reads the LRU through its mapping slot;
a miss forwards the very same arguments to the function.
"""
cimport cython
from cpython.exc cimport PyErr_SetString
from cpython.object cimport PyObject
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New

import sys

from _collections_abc import Coroutine  # collections.abc's own module, loaded by os (issue #21: import cost)

from ._aio import AsyncFlights, await_miss as _await_miss, cached_coroutine, function_like
from . import _cached  # its LRUCacheInfo is made on first use (issue #21: import cost)
from ._cached import SingleFlight, decorators, parameters, wrapper_repr
from ._lru_c import LRU, _GET_KNOWN
from ._policy_c import Cache

__all__ = ["lru_cache", "cache", "AwaitedValue", "LRUCacheWrapper"]


cdef extern from "Python.h":
    object PyMethod_New(object, object)
    ctypedef PyObject* (*vectorcallfunc)(PyObject*, PyObject**, size_t, PyObject*)
    Py_ssize_t PyVectorcall_NARGS(size_t)
    object PyObject_Vectorcall(object, PyObject**, size_t, PyObject*)
    object PyVectorcall_Call(object, object, object)
    object PyTuple_New(Py_ssize_t)
    void PyTuple_SET_ITEM(object, Py_ssize_t, PyObject*)
    PyObject* PyTuple_GET_ITEM(PyObject*, Py_ssize_t)
    PyObject** PySequence_Fast_ITEMS(object)
    Py_ssize_t PyTuple_GET_SIZE(PyObject*)
    void Py_INCREF(PyObject*)
    void Py_DECREF(PyObject*)
    int _richcmp_bool "PyObject_RichCompareBool"(PyObject*, PyObject*, int) except -1
    int Py_EQ
    PyObject* _type_of "(PyObject*)Py_TYPE"(PyObject*)
    unsigned long Py_TPFLAGS_HAVE_VECTORCALL
    ctypedef struct _VectorcallSlots "PyTypeObject":
        Py_ssize_t tp_vectorcall_offset
        unsigned long tp_flags
    void _type_modified "PyType_Modified"(_VectorcallSlots*)


# The compiled engine's lookup with a known hash (``_lru_c._get_known``): 1 and the value on a
# hit, 0 on a miss (no KeyError made), -1 with the exception of a failed lookup. A KeyError
# raised by a key's ``__eq__`` or a ttl's timer is such an exception, never taken for a miss.
ctypedef int (*_get_known_t)(PyObject* lru, PyObject* key, Py_hash_t h, PyObject** value) noexcept
cdef _get_known_t _get_known = <_get_known_t>PyCapsule_GetPointer(_GET_KNOWN, b"fastlru._lru_c._GET_KNOWN")

cdef object _MISSING = object()
cdef object _KWD_MARK = object()  # separates positional from keyword arguments in a key


@cython.final
@cython.freelist(16)
@cython.auto_pickle(False)
cdef class _HashedKey:
    """A key of several arguments: their tuple and its hash, computed once per call."""

    cdef tuple items
    cdef Py_hash_t h

    def __init__(self, *args, **kwargs):
        # made only by _make_key (through __new__, which skips this): never from Python
        raise TypeError("cannot create 'fastlru._functools_c._HashedKey' instances")

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        if type(other) is not _HashedKey:
            return NotImplemented
        if self.items is None or (<_HashedKey>other).items is None:
            return self is other  # one made by __new__ from Python: no items to compare
        return _same_items(<PyObject*>self.items, <PyObject*>(<_HashedKey>other).items)


cdef bint _same_items(PyObject* a, PyObject* b) except -1:
    """``a == b`` for two tuples, item by item (identity first), as tuple's own ``==``."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(a)
    if PyTuple_GET_SIZE(b) != n:
        return False
    for i in range(n):
        if not _richcmp_bool(PyTuple_GET_ITEM(a, i), PyTuple_GET_ITEM(b, i), Py_EQ):
            return False
    return True


cdef inline void _put(object t, Py_ssize_t i, PyObject* item) noexcept:
    Py_INCREF(item)
    PyTuple_SET_ITEM(t, i, item)


cdef object _make_key(PyObject** args, Py_ssize_t nargs, PyObject* kwnames, bint typed):
    """``functools._make_key`` of a vectorcall's arguments: positional arguments, then (with
    keywords) a marker and each keyword's name and value in call order, then (``typed``) the
    types of the positional and keyword values."""
    cdef Py_ssize_t nkw = 0 if kwnames == NULL else PyTuple_GET_SIZE(kwnames)
    cdef Py_ssize_t n = nargs
    cdef Py_ssize_t i, j
    cdef _HashedKey hashed
    cdef object first
    if nkw == 0 and nargs == 1 and not typed:
        first = <object>args[0]
        if type(first) is int or type(first) is str:
            return first
    if nkw:
        n += 1 + 2 * nkw
    if typed:
        n += nargs + nkw
    key = PyTuple_New(n)
    for i in range(nargs):
        _put(key, i, args[i])
    j = nargs
    if nkw:
        _put(key, j, <PyObject*>_KWD_MARK)
        j += 1
        for i in range(nkw):
            _put(key, j, PyTuple_GET_ITEM(kwnames, i))
            _put(key, j + 1, args[nargs + i])
            j += 2
    if typed:
        for i in range(nargs + nkw):
            _put(key, j, _type_of(args[i]))
            j += 1
    hashed = _HashedKey.__new__(_HashedKey)
    hashed.h = hash(key)
    hashed.items = key
    return hashed


def make_key(tuple args not None, dict kwargs not None, bint typed):
    """The key a call ``f(*args, **kwargs)`` looks up (for the coroutine wrapper)."""
    cdef tuple vector, names
    if not kwargs:
        return _make_key(PySequence_Fast_ITEMS(args), len(args), NULL, typed)
    vector = args + tuple(kwargs.values())
    names = tuple(kwargs)
    return _make_key(PySequence_Fast_ITEMS(vector), len(args), <PyObject*>names, typed)


cdef inline object _steal(PyObject* ref):
    """A new reference as an object (no extra incref)."""
    result = <object>ref
    Py_DECREF(ref)
    return result


cdef int _reraise() except -1:
    """Lets Cython propagate the exception already set."""
    return -1


cdef tuple _positional(PyObject** args, Py_ssize_t nargs):
    t = PyTuple_New(nargs)
    for i in range(nargs):
        _put(t, i, args[i])
    return t


cdef dict _keywords(PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    cdef dict kwargs = {}
    if kwnames != NULL:
        for i in range(PyTuple_GET_SIZE(kwnames)):
            kwargs[<object>PyTuple_GET_ITEM(kwnames, i)] = <object>args[nargs + i]
    return kwargs


cdef object _vectorcall(LRUCacheWrapper self, PyObject** args, size_t nargsf, PyObject* kwnames):
    """The call of a wrapper (its C signature is a ``vectorcallfunc``)."""
    cdef Py_ssize_t nargs = PyVectorcall_NARGS(nargsf)
    cdef object lru = self._lru
    if lru is None:
        self._misses += 1
        return PyObject_Vectorcall(self._func, args, nargs, kwnames)
    cdef PyObject* hit = NULL
    cdef int got
    key = _make_key(args, nargs, kwnames, self._typed)
    if type(lru) is LRU:  # the engine's C lookup takes exactly an LRU (a policy's Cache is not one)
        got = _get_known(<PyObject*>lru, <PyObject*>key, hash(key), &hit)  # as lru[key]
        if got > 0:
            return _steal(hit)
        if got < 0:
            _reraise()
    else:
        value = lru.get(key, _MISSING)  # a key's own errors propagate; only a miss is _MISSING
        if value is not _MISSING:
            return value
    if self._flight is not None:
        return self._flight.call(lru, key, self._func, _positional(args, nargs),
                                 _keywords(args, nargs, kwnames), _MISSING)
    result = PyObject_Vectorcall(self._func, args, nargs, kwnames)
    lru.setdefault(key, result)  # a call made meanwhile (re-entrant, a thread) stored first
    return result


@cython.final
@cython.auto_pickle(False)
cdef class LRUCacheWrapper:
    """The callable ``lru_cache`` returns: as ``functools``' wrapper, a descriptor (binds as a
    method), weak-referenceable, pickled by name, copied as itself."""

    cdef object _func
    cdef readonly object _lru  # (read by the coroutine wrapper, _aio.cached_coroutine)
    cdef object _maxsize
    cdef bint _typed
    cdef object _ttl
    cdef object _flight
    cdef object _policy
    cdef unsigned long long _misses  # only for maxsize=0 (the others count in the LRU)
    cdef object _flights  # a coroutine function's computations in progress (_aio.AsyncFlights)
    cdef vectorcallfunc vectorcall   # set by __init__: until then, calls are refused
    cdef dict __dict__
    cdef object __weakref__

    def __init__(self, func, maxsize, typed, ttl, timer, single_flight, policy=None):
        self._func = func
        self._maxsize = maxsize
        self._typed = bool(typed)
        self._ttl = ttl
        self._flight = SingleFlight() if single_flight else None
        self._policy = policy
        self._lru = None
        if maxsize != 0:
            if policy is not None and maxsize is not None:  # unbounded: nothing to evict
                self._lru = Cache(maxsize, policy=policy)
            else:
                self._lru = LRU(sys.maxsize if maxsize is None else maxsize, ttl=ttl, timer=timer)
        self.vectorcall = <vectorcallfunc><void*>_vectorcall

    def __call__(self, *args, **kwargs):
        # only for callers that do not use vectorcall: one path for every call
        if self.vectorcall == NULL:
            raise TypeError("LRUCacheWrapper.__init__ was not called")
        return PyVectorcall_Call(self, args, kwargs)

    def cache_info(self):
        """``CacheInfo(hits, misses, maxsize, currsize)``, as ``functools``."""
        if self._lru is None:
            return _cached.LRUCacheInfo(0, self._misses, 0, 0)
        info = self._lru.info()
        return _cached.LRUCacheInfo(info.hits, info.misses, self._maxsize, info.size)

    def cache_clear(self):
        """Empties the cache and resets its statistics."""
        self._misses = 0
        if self._lru is not None:
            self._lru.clear()
            self._lru.clear_stats()

    def cache_parameters(self):
        return parameters(self._maxsize, self._typed, self._ttl, self._flight is not None,
                          self._policy)

    def __repr__(self):
        return wrapper_repr(self, self._lru)

    def __get__(self, obj, objtype):
        if obj is None:
            return self
        return PyMethod_New(self, obj)

    def __reduce__(self):
        return self.__qualname__  # pickled by name, as functions are

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


# -- coroutine functions: a hit is a coroutine that is already done ------------------------------

cdef extern from "_awaited_send.h":
    ctypedef int (*fastlru_send_func)(PyObject*, PyObject*, PyObject**) noexcept
    void fastlru_enable_send(object type, fastlru_send_func send)


@cython.final
@cython.freelist(16)
@cython.auto_pickle(False)
cdef class AwaitedValue:
    """What a coroutine function under ``lru_cache`` (or an ``async def`` method under
    ormcache's compiled hit path) returns on a hit: a coroutine that is already done.
    ``await``, ``asyncio.create_task``/``ensure_future``/``gather`` and ``asyncio.iscoroutine``
    take it as the function's coroutine; like one, it is awaited once (``send``, ``throw``,
    ``close``), then ``RuntimeError``. No Python frame runs on a hit."""

    cdef object value
    cdef bint done

    def __await__(self):
        return self

    def __iter__(self):
        # ``yield from`` it in a ``@types.coroutine`` generator (a coroutine object is accepted
        # there as such; any other awaitable is taken as an iterator)
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        """Finish with the cached value (``StopIteration(value)``), as the function would."""
        cdef object result
        if self.done:
            raise RuntimeError("cannot reuse already awaited coroutine")
        if value is not None:
            raise TypeError("can't send non-None value to a just-started coroutine")
        self.done = True
        result, self.value = self.value, None
        raise StopIteration(result)

    def throw(self, typ, val=None, tb=None):
        """Raise the exception here, as a coroutine that has not started would (it is done):
        ``StopIteration`` comes out as ``RuntimeError`` where this interpreter's coroutines turn
        it into that (up to 3.11: the frame runs; 3.12 on raise it as is); once done,
        ``RuntimeError``."""
        if self.done:
            raise RuntimeError("cannot reuse already awaited coroutine")
        self.done = True
        self.value = None
        if isinstance(typ, BaseException):
            exc = typ
        elif val is None:
            exc = typ()
        elif isinstance(val, typ):
            exc = val
        else:
            exc = typ(val)
        if tb is not None:
            exc = exc.with_traceback(tb)
        if _UNSTARTED_THROW_RUNS_FRAME and isinstance(exc, StopIteration):
            raise RuntimeError("coroutine raised StopIteration") from exc
        raise exc

    def close(self):
        """Done without a value, as a coroutine closed before it started."""
        self.done = True
        self.value = None


def _unstarted_throw_runs_frame():
    """Whether ``throw()`` into a coroutine that has not started runs its frame, which turns a
    ``StopIteration`` into ``RuntimeError`` (CPython up to 3.11), or raises the exception as is
    (3.12 on): asked of a real coroutine of this interpreter (compiled by it, not by Cython)."""
    namespace = {}
    exec("async def probe():\n    pass\n", namespace)
    coroutine = namespace["probe"]()
    try:
        coroutine.throw(StopIteration)
    except RuntimeError:
        return True
    except StopIteration:
        return False
    finally:
        coroutine.close()
    return True


cdef bint _UNSTARTED_THROW_RUNS_FRAME = _unstarted_throw_runs_frame()


cdef int _awaited_send(PyObject* obj, PyObject* arg, PyObject** result) noexcept:
    # am_send: 0 (PYGEN_RETURN) with the value, or -1 (PYGEN_ERROR) with an exception set
    cdef AwaitedValue self = <AwaitedValue>obj
    cdef object value
    result[0] = NULL
    if self.done:
        PyErr_SetString(RuntimeError, "cannot reuse already awaited coroutine")
        return -1
    if arg != <PyObject*>None:
        PyErr_SetString(TypeError, "can't send non-None value to a just-started coroutine")
        return -1
    self.done = True
    value, self.value = self.value, None
    Py_INCREF(<PyObject*>value)
    result[0] = <PyObject*>value
    return 0


cdef object _awaited_value(object value):
    cdef AwaitedValue awaited = AwaitedValue.__new__(AwaitedValue)
    awaited.value = value
    return awaited


fastlru_enable_send(AwaitedValue, _awaited_send)
Coroutine.register(AwaitedValue)
# for other compiled modules (ormcache._cache_c): the C function that makes one
_awaited_capi = PyCapsule_New(<void*>_awaited_value, "fastlru._functools_c.awaited_value", NULL)


cdef object _coroutine_vectorcall(LRUCacheWrapper self, PyObject** args, size_t nargsf, PyObject* kwnames):
    """The call of a coroutine function's wrapper: a hit is an ``AwaitedValue``; a miss is the
    coroutine of ``_aio.await_miss`` (single flight per event loop), as the ``async def``
    wrapper of ``_aio.cached_coroutine`` (the twin's, and this one's on Python 3.9)."""
    cdef Py_ssize_t nargs = PyVectorcall_NARGS(nargsf)
    cdef object lru = self._lru
    cdef PyObject* hit = NULL
    cdef int got
    key = _make_key(args, nargs, kwnames, self._typed)
    if type(lru) is LRU:  # as _vectorcall
        got = _get_known(<PyObject*>lru, <PyObject*>key, hash(key), &hit)  # as lru[key]
        if got > 0:
            return _awaited_value(_steal(hit))
        if got < 0:
            _reraise()
    else:
        value = lru.get(key, _MISSING)
        if value is not _MISSING:
            return _awaited_value(value)
    return _await_miss(self._flights, lru, key, self._func, _positional(args, nargs), _keywords(args, nargs, kwnames))


def _cached_coroutine(LRUCacheWrapper inner not None, make_key, func, typed):
    """``lru_cache`` of a coroutine function: ``inner`` itself, called through
    ``_coroutine_vectorcall`` (``_aio.cached_coroutine``'s ``async def`` wrapper for
    ``maxsize=0``, and on Python 3.9, whose ``inspect`` takes only functions for coroutine
    functions). Function-like (``_aio.function_like``): ``inspect.iscoroutinefunction`` holds."""
    if sys.version_info < (3, 10) or inner._lru is None:
        return cached_coroutine(inner, make_key, func, typed)
    inner._flights = AsyncFlights()
    inner.vectorcall = <vectorcallfunc><void*>_coroutine_vectorcall
    return function_like(inner, func)


lru_cache, cache = decorators(LRUCacheWrapper, make_key, _cached_coroutine)


cdef _install_vectorcall():
    """Tells CPython where a wrapper keeps its vectorcall function (as a C type would with
    ``tp_vectorcall_offset``; Cython does not declare it for us)."""
    cdef LRUCacheWrapper probe = LRUCacheWrapper.__new__(LRUCacheWrapper)
    cdef _VectorcallSlots* slots = <_VectorcallSlots*>LRUCacheWrapper
    slots.tp_vectorcall_offset = <char*>&probe.vectorcall - <char*><PyObject*>probe
    slots.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL
    _type_modified(slots)


_install_vectorcall()
