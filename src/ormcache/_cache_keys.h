/* The hit path's keys: the reused probe tuple, HashedKey, and the folded tuple hash.
 *
 * C of _cache_c.pyx, declared there with `cdef extern from "_cache_keys.h"`. */
#ifndef ORMCACHE_CACHE_KEYS_H
#define ORMCACHE_CACHE_KEYS_H

#include <Python.h>

#define ormcache_steal(o) (o)

/* The probe key of a hit is a tuple the wrapper keeps and refills, instead of a new tuple
   per call (allocating, tracking and freeing it was a quarter of a hit). It is used only
   when nobody else holds it (reference count 1: not in use by a re-entrant call nor kept by
   anyone), and never on free-threaded builds, where that test proves nothing. */
static int ormcache_scratch_free(PyObject *t) {
#ifdef Py_GIL_DISABLED
    return 0;
#else
    return t != NULL && Py_REFCNT(t) == 1;
#endif
}
static void ormcache_set(PyObject **slot, PyObject *value) {
    PyObject *old = *slot;
    if (old == value) return;
    Py_INCREF(value);
    *slot = value;
    Py_XDECREF(old);  /* None, or what the owner keeps alive anyway: runs no user code */
}
/* CPython 3.14 caches a tuple's hash inside the tuple (ob_hash, python/cpython gh-131525,
   PR #131529). A tuple whose items we change must forget it, or every lookup after the
   first would probe with the first key's hash. -1 is "not computed yet". */
static void ormcache_forget_hash(PyObject *t) {
#if PY_VERSION_HEX >= 0x030E0000
    ((PyTupleObject *)t)->ob_hash = -1;
#else
    (void)t;
#endif
}
/* t = (model, func, *args[indices]) */
static void ormcache_fill(PyObject *t, PyObject *model, PyObject *func, PyObject **args,
                          const Py_ssize_t *indices, Py_ssize_t n) {
    PyObject **items = ((PyTupleObject *)t)->ob_item;
    Py_ssize_t i;
    ormcache_set(&items[0], model);
    ormcache_set(&items[1], func);
    for (i = 0; i < n; i++) ormcache_set(&items[2 + i], args[indices[i]]);
    ormcache_forget_hash(t);
}
/* t[i] = value (the context's share of an ormcache_context probe) */
static void ormcache_fill_item(PyObject *t, Py_ssize_t i, PyObject *value) {
    ormcache_set(&((PyTupleObject *)t)->ob_item[i], value);
    ormcache_forget_hash(t);
}
/* Back to None: the kept tuple must not keep the call's arguments alive. The caller still
   holds them, so these decrefs free nothing. */
static void ormcache_unfill(PyObject *t, Py_ssize_t n) {
    PyObject **items = ((PyTupleObject *)t)->ob_item;
    Py_ssize_t i;
    for (i = 0; i < n; i++) ormcache_set(&items[2 + i], Py_None);
    ormcache_forget_hash(t);
}

/* HashedKey: the key a miss stores, a tuple that computes its hash once and keeps it (as
   cachetools' hashed keys), so the flight table, the store and the flight removal never
   run the arguments' __hash__ again. The hash lives after the items: the type is one
   Py_hash_t larger than a tuple, and instances are allocated zeroed (0: not computed yet;
   a genuine hash of 0 is merely recomputed). Final, equal to and hashed as the plain tuple. */
static PyTypeObject ormcache_HashedKey_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    "ormcache._cache_c.HashedKey",
    offsetof(PyTupleObject, ob_item) + sizeof(Py_hash_t),
    sizeof(PyObject *),
};
static Py_hash_t *ormcache_key_slot(PyObject *key) {
    return (Py_hash_t *)((char *)key + offsetof(PyTupleObject, ob_item) + Py_SIZE(key) * sizeof(PyObject *));
}
static Py_hash_t ormcache_key_hash(PyObject *key) {
    Py_hash_t *slot = ormcache_key_slot(key);
    Py_hash_t h = *slot;
    if (h == 0) {
        h = PyTuple_Type.tp_hash(key);
        if (h == -1) return -1;
        *slot = h;
    }
    return h;
}
/* Pickled (and copied) as the plain tuple: equal, same hash. */
static PyObject *ormcache_key_reduce(PyObject *key, PyObject *unused) {
    PyObject *items = PyTuple_GetSlice(key, 0, PyTuple_GET_SIZE(key));  /* an exact tuple */
    if (items == NULL) return NULL;
    return Py_BuildValue("(O(N))", (PyObject *)&PyTuple_Type, items);
}
static PyMethodDef ormcache_key_methods[] = {
    {"__reduce__", (PyCFunction)ormcache_key_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
/* hash(o), read straight from a HashedKey that has it (the context part of a key) */
static inline Py_hash_t ormcache_part_hash(PyObject *o) {
    if (Py_IS_TYPE(o, &ormcache_HashedKey_Type)) {
        Py_hash_t h = *ormcache_key_slot(o);
        if (h != 0) return h;
    }
    return PyObject_Hash(o);
}
/* The key plan's values for a positional call (keys.KeyFunction.plan, here one
   (default, attribute names, builtin or None) per value, and each value's argument
   position): attribute chains read and builtins called without the lambda's frame. A new
   tuple, or NULL with the exception set. */
static PyObject *ormcache_plan_values(PyObject *plan, const Py_ssize_t *positions,
                                      PyObject **args, Py_ssize_t nargs) {
    Py_ssize_t i, j, n = PyTuple_GET_SIZE(plan);
    PyObject *values = PyTuple_New(n), *step, *names, *call, *value, *next;
    if (values == NULL) return NULL;
    for (i = 0; i < n; i++) {
        step = PyTuple_GET_ITEM(plan, i);
        names = PyTuple_GET_ITEM(step, 1);
        call = PyTuple_GET_ITEM(step, 2);
        value = positions[i] < nargs ? args[positions[i]] : PyTuple_GET_ITEM(step, 0);
        Py_INCREF(value);
        for (j = 0; j < PyTuple_GET_SIZE(names); j++) {
            next = PyObject_GetAttr(value, PyTuple_GET_ITEM(names, j));
            Py_DECREF(value);
            if (next == NULL) goto error;
            value = next;
        }
        if (call != Py_None) {
            next = PyObject_CallOneArg(call, value);
            Py_DECREF(value);
            if (next == NULL) goto error;
            value = next;
        }
        PyTuple_SET_ITEM(values, i, value);
    }
    return values;
error:
    Py_DECREF(values);
    return NULL;
}
static PyObject *ormcache_key_type(void) {
    PyTypeObject *tp = &ormcache_HashedKey_Type;
    if (tp->tp_base == NULL) {
        tp->tp_flags = Py_TPFLAGS_DEFAULT;
        tp->tp_doc = "A key tuple that computes its hash once (the key an ormcache miss stores).";
        tp->tp_base = &PyTuple_Type;
        tp->tp_hash = ormcache_key_hash;
        tp->tp_richcompare = PyTuple_Type.tp_richcompare;
        tp->tp_methods = ormcache_key_methods;
        if (PyType_Ready(tp) < 0) return NULL;
    }
    Py_INCREF(tp);
    return (PyObject *)tp;
}
/* A HashedKey with the items of the tuple t (a copy: the probe tuple is reused). */
static PyObject *ormcache_hashed(PyObject *t) {
    Py_ssize_t i, n = PyTuple_GET_SIZE(t);
    PyObject *key = ormcache_HashedKey_Type.tp_alloc(&ormcache_HashedKey_Type, n);
    if (key == NULL) return NULL;
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(t, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(key, i, item);
    }
    ormcache_forget_hash(key);
    return key;
}

/* The hash of the key tuple (model, func, *args) folded item by item, as CPython's own
   tuple hash does (xxHash-based, Objects/tupleobject.c tuplehash, 3.8 on): a slot folds
   its constant prefix (model, func) once, a hit folds only the arguments' hashes. Used
   only if it gives hash(t) for sample tuples at import (_fold_ok). */
#if SIZEOF_PY_UHASH_T > 4
#define ORMCACHE_P1 ((Py_uhash_t)11400714785074694791ULL)
#define ORMCACHE_P2 ((Py_uhash_t)14029467366897019727ULL)
#define ORMCACHE_P5 ((Py_uhash_t)2870177450012600261ULL)
#define ORMCACHE_ROTATE(x) ((x << 31) | (x >> 33))
#else
#define ORMCACHE_P1 ((Py_uhash_t)2654435761UL)
#define ORMCACHE_P2 ((Py_uhash_t)2246822519UL)
#define ORMCACHE_P5 ((Py_uhash_t)374761393UL)
#define ORMCACHE_ROTATE(x) ((x << 13) | (x >> 19))
#endif
static inline Py_uhash_t ormcache_fold_start(void) { return ORMCACHE_P5; }
static inline Py_uhash_t ormcache_fold(Py_uhash_t acc, Py_hash_t lane) {
    acc += (Py_uhash_t)lane * ORMCACHE_P2;
    acc = ORMCACHE_ROTATE(acc);
    return acc * ORMCACHE_P1;
}
static inline Py_hash_t ormcache_fold_end(Py_uhash_t acc, Py_ssize_t len) {
    acc += (Py_uhash_t)len ^ (ORMCACHE_P5 ^ 3527539UL);
    return acc == (Py_uhash_t)-1 ? 1546275796 : (Py_hash_t)acc;
}
/* 1 if the fold gives hash(t) for the tuple t (its items' hashes are known not to fail) */
static int ormcache_fold_matches(PyObject *t) {
    Py_ssize_t i, n = PyTuple_GET_SIZE(t);
    Py_uhash_t acc = ormcache_fold_start();
    Py_hash_t expected = PyObject_Hash(t);
    if (expected == -1) { PyErr_Clear(); return 0; }
    for (i = 0; i < n; i++) acc = ormcache_fold(acc, PyObject_Hash(PyTuple_GET_ITEM(t, i)));
    return ormcache_fold_end(acc, n) == expected;
}
/* Whether hashing o runs no Python code and always gives the same value: a str (its hash
   is cached) or an object hashed by identity (a function). Only such constant key items are
   folded once per slot. */
static int ormcache_constant_hash(PyObject *o) {
    return PyUnicode_CheckExact(o) || Py_TYPE(o)->tp_hash == PyBaseObject_Type.tp_hash;
}
typedef int (*ormcache_get_known_t)(PyObject *lru, PyObject *key, Py_hash_t h, PyObject **value);

#endif
