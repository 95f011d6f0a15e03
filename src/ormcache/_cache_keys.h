/* The hit path's keys: the reused probe tuple, HashedKey, and the folded tuple hash.
 *
 * C of _cache_c.pyx, declared there with `cdef extern from "_cache_keys.h"`. */
#ifndef ORMCACHE_CACHE_KEYS_H
#define ORMCACHE_CACHE_KEYS_H

#include <Python.h>
#include "_cache_owner.h"  /* ormcache_type_tag, ORMCACHE_T_OBJECT_EX */

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
static inline void ormcache_set(PyObject **slot, PyObject *value) {
    PyObject *old = *slot;
    if (old == value) return;
    Py_INCREF(value);
    *slot = value;
    Py_XDECREF(old);  /* None, or what the owner keeps alive anyway: runs no user code */
}
/* CPython 3.14 caches a tuple's hash inside the tuple (ob_hash, python/cpython gh-131525,
   PR #131529). A tuple whose items we change must forget it, or every lookup after the
   first would probe with the first key's hash. -1 is "not computed yet". */
static inline void ormcache_forget_hash(PyObject *t) {
#if PY_VERSION_HEX >= 0x030E0000
    ((PyTupleObject *)t)->ob_hash = -1;
#else
    (void)t;
#endif
}
/* t = (model, func, *args[indices]) */
static inline void ormcache_fill(PyObject *t, PyObject *model, PyObject *func, PyObject **args,
                          const Py_ssize_t *indices, Py_ssize_t n) {
    PyObject **items = ((PyTupleObject *)t)->ob_item;
    Py_ssize_t i;
    ormcache_set(&items[0], model);
    ormcache_set(&items[1], func);
    for (i = 0; i < n; i++) ormcache_set(&items[2 + i], args[indices[i]]);
    ormcache_forget_hash(t);
}
/* t[i] = value (the context's share of an ormcache_context probe) */
static inline void ormcache_fill_item(PyObject *t, Py_ssize_t i, PyObject *value) {
    ormcache_set(&((PyTupleObject *)t)->ob_item[i], value);
    ormcache_forget_hash(t);
}
/* Back to None: the kept tuple must not keep the call's arguments alive. The caller still
   holds them, so these decrefs free nothing. */
static inline void ormcache_unfill(PyObject *t, Py_ssize_t n) {
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
/* Reading one attribute of a key plan (``self.env.uid``: ``env``, then ``uid``) as CPython's
   own attribute caches do (the specialised LOAD_ATTR): per step, what the last object's type
   does for that name, valid while the type's version tag is unchanged (a class changed, or one
   of its bases, gets a new tag; tags are never reused). The kinds:
   ORMCACHE_ATTR_SLOT: a __slots__ entry, read at its offset (unset: getattr raises);
   ORMCACHE_ATTR_DESCR: a descriptor that wins over the instance dict (a property, a data
     descriptor; or on a type without instance dict any descriptor): its __get__ called directly;
   ORMCACHE_ATTR_DICT: the instance dict's entry, else the class attribute (a plain value, or
     a non-data descriptor's __get__), else getattr (which raises, as it would);
   ORMCACHE_ATTR_CLASS: no instance dict, a plain class attribute: that value.
   Anything else (a custom __getattribute__ or __getattr__, a type without a version tag) is
   getattr's. The pointers are borrowed: the type's (and its bases') dicts hold the descriptor
   while the tag is the same. Free-threaded builds read every attribute with getattr: another
   thread may change a type or an entry under a read. */
typedef struct {
    PyTypeObject *type;  /* compared, never dereferenced unless an object of it is at hand */
    unsigned int tag;
    int kind;
    Py_ssize_t offset;
    PyObject *descr;
    /* ORMCACHE_ATTR_DICT on 3.9-3.12: the instance dict last read, at its version, and the
       entry it held (borrowed: while the dict is at that version, it holds it) */
    PyObject *seen_dict;
    uint64_t seen_version;
    PyObject *seen_value;
} ormcache_attr;
enum { ORMCACHE_ATTR_GETATTR = 0, ORMCACHE_ATTR_SLOT, ORMCACHE_ATTR_DESCR, ORMCACHE_ATTR_DICT,
       ORMCACHE_ATTR_CLASS };
/* the attribute reads a plan caches per method (more attributes are read with getattr) */
#define ORMCACHE_MAX_ATTRS 16

#ifndef Py_GIL_DISABLED
/* PyObject_GetAttr's care of an AttributeError (3.10+: the name and the object, for the
   "Did you mean" hint), for a descriptor called directly. */
static void ormcache_attr_error(PyObject *obj, PyObject *name) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return;
    exc = PyErr_GetRaisedException();
    if (PyErr_GivenExceptionMatches(exc, PyExc_AttributeError)) {
        PyAttributeErrorObject *e = (PyAttributeErrorObject *)exc;
        if (e->name == NULL && e->obj == NULL
                && (PyObject_SetAttrString(exc, "name", name) < 0 || PyObject_SetAttrString(exc, "obj", obj) < 0)) {
            Py_DECREF(exc);
            return;
        }
    }
    PyErr_SetRaisedException(exc);
#elif PY_VERSION_HEX >= 0x030A0000
    PyObject *type, *value, *tb;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (PyErr_GivenExceptionMatches(value, PyExc_AttributeError)
            && (PyObject_SetAttrString(value, "name", name) < 0 || PyObject_SetAttrString(value, "obj", obj) < 0)) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return;
    }
    PyErr_Restore(type, value, tb);
#else
    (void)obj;
    (void)name;
#endif
}

/* A property's getter (fget), NULL when none: the first field after the object's head of
   CPython's propertyobject (Objects/descrobject.c, 3.9-3.14), read at every call (its __init__
   may be called again) and only for exact properties. */
static inline PyObject *ormcache_property_fget(PyObject *property) {
    return *(PyObject **)((char *)property + sizeof(PyObject));
}
/* Whether instances of tp may have an instance dict. */
static int ormcache_has_dict(PyTypeObject *tp) {
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) return 1;
#endif
    return tp->tp_dictoffset != 0;
}
/* Decide e's kind for `name` on tp (0: nothing cached, read with getattr). */
static int ormcache_attr_learn(ormcache_attr *e, PyTypeObject *tp, PyObject *name) {
    PyObject *descr;
    descrgetfunc get;
    unsigned int tag;
    int kind;
    Py_ssize_t offset = 0;
    e->type = NULL;
    if (tp->tp_getattro != PyObject_GenericGetAttr) return 0;
    descr = _PyType_Lookup(tp, name);  /* also gives the type a version tag */
    tag = ormcache_type_tag((PyObject *)tp);
    /* once more: a lookup may compare keys with user code, which could change the class;
       an unchanged version tag proves it did not */
    if (tag == 0 || _PyType_Lookup(tp, name) != descr || ormcache_type_tag((PyObject *)tp) != tag) return 0;
    get = descr != NULL ? Py_TYPE(descr)->tp_descr_get : NULL;
    if (get != NULL && Py_TYPE(descr)->tp_descr_set != NULL) {  /* a data descriptor wins */
        kind = ORMCACHE_ATTR_DESCR;
        if (Py_IS_TYPE(descr, &PyMemberDescr_Type) && PyType_IsSubtype(tp, PyDescr_TYPE(descr))) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == ORMCACHE_T_OBJECT_EX && member->offset > 0 && !(member->flags & 2 /* READ_RESTRICTED: audited */)) {
                kind = ORMCACHE_ATTR_SLOT;
                offset = member->offset;
            }
        }
    } else if (ormcache_has_dict(tp)) {
        kind = ORMCACHE_ATTR_DICT;
    } else if (descr == NULL) {
        return 0;  /* getattr raises the AttributeError */
    } else {
        kind = get != NULL ? ORMCACHE_ATTR_DESCR : ORMCACHE_ATTR_CLASS;
    }
    e->seen_dict = NULL;
    e->tag = tag;
    e->kind = kind;
    e->offset = offset;
    e->descr = descr;
    e->type = tp;
    return kind;
}
/* The instance dict of obj (borrowed, NULL when none), as ormcache_instance_attrs reads it. */
static PyObject *ormcache_own_dict(PyObject *obj) {
    PyObject **dictptr = ormcache_dict_ptr(obj);  /* _cache_owner.h */
    return dictptr != NULL ? *dictptr : NULL;
}
#endif

/* getattr(obj, name), through the cache entry e (NULL: none); a new reference, or NULL with
   the exception set (as getattr's). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline PyObject *ormcache_getattr(PyObject *obj, PyObject *name, ormcache_attr *e) {
#ifndef Py_GIL_DISABLED
    PyTypeObject *tp = Py_TYPE(obj);
    PyObject *v, *descr, *dict;
    PyObject *fget;
    descrgetfunc get;
#ifdef ORMCACHE_DICT_VERSIONS
    uint64_t version;
#endif
    if (e == NULL) return PyObject_GetAttr(obj, name);
    if (e->type != tp || e->tag != ormcache_type_tag((PyObject *)tp)) {
        if (!ormcache_attr_learn(e, tp, name)) return PyObject_GetAttr(obj, name);
    }
    switch (e->kind) {
    case ORMCACHE_ATTR_SLOT:
        v = *(PyObject **)((char *)obj + e->offset);
        if (v == NULL) break;  /* unset: getattr raises */
        Py_INCREF(v);
        return v;
    case ORMCACHE_ATTR_DESCR:
        descr = e->descr;
        Py_INCREF(descr);  /* its __get__ may change the class */
        if (Py_IS_TYPE(descr, &PyProperty_Type) && ormcache_property_fget(descr) != NULL && obj != Py_None) {
            /* property.__get__ is fget(obj): called straight, without __get__ between */
            fget = ormcache_property_fget(descr);
            Py_INCREF(fget);
            v = PyObject_Vectorcall(fget, &obj, 1, NULL);
            Py_DECREF(fget);
        } else {
            v = Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)tp);
        }
        Py_DECREF(descr);
        if (v == NULL) ormcache_attr_error(obj, name);
        return v;
    case ORMCACHE_ATTR_DICT:
        dict = ormcache_own_dict(obj);
        if (dict == NULL || !PyDict_CheckExact(dict)) break;  /* no dict yet, or a subclass: getattr */
#ifdef ORMCACHE_DICT_VERSIONS
        /* the dict of the last read, unchanged (versions are unique: a new dict at the same
           address has another): the same entry, without a lookup */
        if (dict == e->seen_dict && ormcache_dict_version(dict) == e->seen_version) {
            Py_INCREF(e->seen_value);
            return e->seen_value;
        }
        version = ormcache_dict_version(dict);
#endif
        descr = e->descr;
        Py_XINCREF(descr);  /* a key's __eq__ in the lookup may change the class, */
        Py_INCREF(dict);    /* or replace obj.__dict__ */
        v = PyDict_GetItemWithError(dict, name);
        Py_XINCREF(v);
#ifdef ORMCACHE_DICT_VERSIONS
        if (v != NULL && ormcache_dict_version(dict) == version && Py_REFCNT(dict) > 1) {  /* unchanged, kept by obj */
            e->seen_dict = dict;
            e->seen_version = version;
            e->seen_value = v;
        }
#endif
        Py_DECREF(dict);
        if (v != NULL || PyErr_Occurred()) {
            Py_XDECREF(descr);
            return v;
        }
        if (descr == NULL) break;  /* nowhere: getattr raises */
        get = Py_TYPE(descr)->tp_descr_get;
        if (get == NULL) return descr;  /* a plain class attribute (the reference taken above) */
        v = get(descr, obj, (PyObject *)tp);
        Py_DECREF(descr);
        if (v == NULL) ormcache_attr_error(obj, name);
        return v;
    case ORMCACHE_ATTR_CLASS:
        Py_INCREF(e->descr);
        return e->descr;
    }
#else
    (void)e;
#endif
    return PyObject_GetAttr(obj, name);
}

/* frozenset(t) of a tuple t whose items are all exact str, int, float, bool or None (hashed
   and compared without user code): the same tuple object (a tuple never changes) gives an equal
   frozenset, so a plan step remembers the last pair and reuses that frozenset (its hash kept
   inside it; a stored key holding this very object matches without __eq__). Strong
   references, released by ormcache_memos_clear; never on free-threaded builds. */
typedef struct { PyObject *arg; PyObject *result; } ormcache_memo;
#ifndef Py_GIL_DISABLED
static int ormcache_atomic_items(PyObject *t) {
    Py_ssize_t i;
    for (i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *o = PyTuple_GET_ITEM(t, i);
        if (!(PyUnicode_CheckExact(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o)
              || Py_IS_TYPE(o, &PyBool_Type) || o == Py_None)) return 0;
    }
    return 1;
}
#endif
static void ormcache_memos_clear(ormcache_memo *memos, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        Py_CLEAR(memos[i].arg);
        Py_CLEAR(memos[i].result);
    }
}
/* builtin(value), through the step's memo (NULL: none); steals value, a new reference or NULL */
static PyObject *ormcache_plan_call(PyObject *call, PyObject *value, ormcache_memo *memo) {
    PyObject *result;
#ifndef Py_GIL_DISABLED
    PyObject *old_arg, *old_result;
    if (memo != NULL && call == (PyObject *)&PyFrozenSet_Type && PyTuple_CheckExact(value)) {
        if (memo->arg == value) {
            Py_DECREF(value);
            Py_INCREF(memo->result);
            return memo->result;
        }
        result = PyObject_CallOneArg(call, value);
        if (result != NULL && PyFrozenSet_CheckExact(result) && ormcache_atomic_items(value)) {
            old_arg = memo->arg;
            old_result = memo->result;
            memo->arg = value;  /* our reference */
            Py_INCREF(result);
            memo->result = result;
            Py_XDECREF(old_arg);  /* atomic items only: frees no user object */
            Py_XDECREF(old_result);
            return result;
        }
        Py_DECREF(value);
        return result;
    }
#else
    (void)memo;
#endif
    result = PyObject_CallOneArg(call, value);
    Py_DECREF(value);
    return result;
}

/* A key plan (keys.KeyFunction.plan) flattened once, when the method is made: per value, the
   argument it starts from (or its default when not given), the attributes read in turn, the
   builtin called on it (NULL: none) and its first entry in the attribute cache (entries past
   ORMCACHE_MAX_ATTRS read with getattr). The pointers are borrowed from the plan tuple the
   method keeps for its lifetime (a tuple of tuples: never changed). */
typedef struct {
    Py_ssize_t position;
    PyObject *dflt;
    PyObject **names;
    Py_ssize_t n_names;
    Py_ssize_t attr;
    Py_ssize_t n_hot;  /* how many of the names have a cache entry (the first ones) */
    PyObject *call;
} ormcache_step;
/* steps[i] from plan[i] = (default, names tuple, builtin or None), positions[i] apart */
static void ormcache_steps_init(ormcache_step *steps, PyObject *plan, const Py_ssize_t *positions) {
    Py_ssize_t i, k = 0;
    for (i = 0; i < PyTuple_GET_SIZE(plan); i++) {
        PyObject *step = PyTuple_GET_ITEM(plan, i), *names = PyTuple_GET_ITEM(step, 1), *call = PyTuple_GET_ITEM(step, 2);
        steps[i].position = positions[i];
        steps[i].dflt = PyTuple_GET_ITEM(step, 0);
        steps[i].names = ((PyTupleObject *)names)->ob_item;
        steps[i].n_names = PyTuple_GET_SIZE(names);
        steps[i].attr = k;
        steps[i].n_hot = k >= ORMCACHE_MAX_ATTRS ? 0 : (k + steps[i].n_names <= ORMCACHE_MAX_ATTRS ? steps[i].n_names : ORMCACHE_MAX_ATTRS - k);
        steps[i].call = call != Py_None ? call : NULL;
        k += steps[i].n_names;
    }
}

#ifndef Py_GIL_DISABLED
/* The instance dict of obj as ormcache_own_dict, without a call on 3.11 and 3.12 for a managed
   dict (CPython's _PyObject_ManagedDictPointer, 3.11: the pointer three words before the
   object; 3.12: _PyObject_DictOrValuesPointer, the same word, tagged 1 while the values are
   inline): NULL while the values are inline, which sends the read to ormcache_getattr (it
   makes the dict, as reading obj.__dict__ would). */
static inline PyObject *ormcache_own_dict_hot(PyObject *obj) {
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    if (Py_TYPE(obj)->tp_flags & Py_TPFLAGS_MANAGED_DICT) return ((PyObject **)obj)[-3];
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    if (Py_TYPE(obj)->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
        uintptr_t word = ((uintptr_t *)obj)[-3];
        return (word & 1) ? NULL : (PyObject *)word;
    }
#endif
    return ormcache_own_dict(obj);
}
#endif
/* getattr(obj, name) through e, borrowed, when e answers it without running any code: a
   __slots__ entry that is set, or (3.9-3.12) the instance dict's entry last read, at the
   dict's version. NULL: ask ormcache_getattr (no exception set). */
static inline PyObject *ormcache_attr_hot(PyObject *obj, ormcache_attr *e) {
#ifndef Py_GIL_DISABLED
    PyTypeObject *tp = Py_TYPE(obj);
    if (e->type != tp || e->tag != ormcache_type_tag((PyObject *)tp)) return NULL;
    if (e->kind == ORMCACHE_ATTR_SLOT) return *(PyObject **)((char *)obj + e->offset);
#ifdef ORMCACHE_DICT_VERSIONS
    if (e->kind == ORMCACHE_ATTR_DICT && e->seen_dict != NULL) {
        PyObject *dict = ormcache_own_dict_hot(obj);
        if (dict == e->seen_dict && ormcache_dict_version(dict) == e->seen_version) return e->seen_value;
    }
#endif
#else
    (void)obj;
    (void)e;
#endif
    return NULL;
}
/* The rest of a plan value once the cache has answered its first j attribute reads (value:
   the object reached, borrowed): the other reads with getattr (strong references from here:
   code may run), then the builtin through its memo. A new reference, or NULL with the
   exception set. */
static PyObject *ormcache_step_rest(const ormcache_step *step, PyObject *value, Py_ssize_t j,
                                    ormcache_attr *cache, ormcache_memo *memo) {
    PyObject *next;
    Py_ssize_t k = step->attr + j;
    Py_INCREF(value);
    for (; j < step->n_names; j++, k++) {
        next = ormcache_getattr(value, step->names[j], cache != NULL && k < ORMCACHE_MAX_ATTRS ? &cache[k] : NULL);
        Py_DECREF(value);
        if (next == NULL) return NULL;
        value = next;
    }
    if (step->call != NULL) value = ormcache_plan_call(step->call, value, memo);
    return value;
}
/* One value of the plan: the argument (or the default), its attributes read in turn, the
   builtin called on it (through its memo). The reads the cache answers take no references (no
   code runs between them); the others are ormcache_step_rest's. A new reference, or NULL with
   the exception set. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline PyObject *ormcache_step_value(const ormcache_step *step, PyObject **args, Py_ssize_t nargs,
                                            ormcache_attr *cache, ormcache_memo *memo) {
    PyObject *value = step->position < nargs ? args[step->position] : step->dflt, *next;
    const Py_ssize_t hot = cache != NULL ? step->n_hot : 0;
    ormcache_attr *e = hot > 0 ? cache + step->attr : NULL;
    Py_ssize_t j = 0;
    for (; j < hot; j++) {
        next = ormcache_attr_hot(value, &e[j]);
        if (next == NULL) break;
        value = next;
    }
    if (j == step->n_names && step->call == NULL) {
        Py_INCREF(value);
        return value;
    }
    return ormcache_step_rest(step, value, j, cache, memo);
}
/* The key plan's values for a positional call, as a new tuple, or NULL with the exception set. */
static PyObject *ormcache_plan_values(const ormcache_step *steps, Py_ssize_t n, PyObject **args, Py_ssize_t nargs,
                                      ormcache_attr *cache, ormcache_memo *memos) {
    Py_ssize_t i;
    PyObject *values = PyTuple_New(n), *value;
    if (values == NULL) return NULL;
    for (i = 0; i < n; i++) {
        value = ormcache_step_value(&steps[i], args, nargs, cache, cache != NULL ? &memos[i] : NULL);
        if (value == NULL) {
            Py_DECREF(values);
            return NULL;
        }
        PyTuple_SET_ITEM(values, i, value);
    }
    return values;
}
/* The probe t = (model, func, *values), the values evaluated straight into t[2], t[3]...: no
   tuple of values made and freed per call. 0, or -1 with the exception set (and t's values
   back to None). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int ormcache_plan_fill(PyObject *t, PyObject *model, PyObject *func, const ormcache_step *steps,
                              Py_ssize_t n, PyObject **args, Py_ssize_t nargs, ormcache_attr *cache,
                              ormcache_memo *memos) {
    PyObject **items = ((PyTupleObject *)t)->ob_item, *value, *old;
    Py_ssize_t i;
    ormcache_set(&items[0], model);
    ormcache_set(&items[1], func);
    for (i = 0; i < n; i++) {
        value = ormcache_step_value(&steps[i], args, nargs, cache, &memos[i]);
        if (value == NULL) {
            PyObject *type, *exc, *tb;
            PyErr_Fetch(&type, &exc, &tb);  /* freeing a value may run code */
            while (i-- > 0) ormcache_set(&items[2 + i], Py_None);
            ormcache_forget_hash(t);
            PyErr_Restore(type, exc, tb);
            return -1;
        }
        old = items[2 + i];
        items[2 + i] = value;  /* stolen */
        Py_XDECREF(old);  /* None: runs no user code */
    }
    ormcache_forget_hash(t);
    return 0;
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
/* hash(o) as CPython computes it, without a call for the key items a hit sees most: an exact
   str whose hash is cached (unicode_hash's own cache), an exact int of one digit (long_hash
   gives its value, -1 made -2; 3.11+, where Python.h gives the int's layout). Anything else,
   and every item on free-threaded builds, goes to PyObject_Hash. */
static inline Py_hash_t ormcache_item_hash(PyObject *o) {
#ifndef Py_GIL_DISABLED
    if (PyUnicode_CheckExact(o)) {
        Py_hash_t h = ((PyASCIIObject *)o)->hash;
        if (h != -1) return h;
    }
#if PY_VERSION_HEX >= 0x030C0000
    else if (PyLong_CheckExact(o) && PyUnstable_Long_IsCompact((PyLongObject *)o)) {
        Py_hash_t v = (Py_hash_t)PyUnstable_Long_CompactValue((PyLongObject *)o);
        return v == -1 ? -2 : v;
    }
#elif PY_VERSION_HEX >= 0x030B0000
    else if (PyLong_CheckExact(o) && Py_SIZE(o) >= -1 && Py_SIZE(o) <= 1) {
        Py_hash_t v = Py_SIZE(o) * (Py_hash_t)((PyLongObject *)o)->ob_digit[0];
        return v == -1 ? -2 : v;
    }
#endif
#endif
    return PyObject_Hash(o);
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
