/* How the hit path reads an owner's `pool` and `_name`, finds its slot by type, and reads a context dict.
 *
 * The owner rule is Python's `ormcache._cold.owner_keys` (pool: `owner.pool`, else None; model
 * key: `owner._name`, else the owner's class, or the owner if a class; `pool` read first): this
 * implements it without getattr where the owner's type allows, and _cache_c's getattr fallback
 * where it does not; tests/ormcache/test_spec21_owner.py pins them to the same answers.
 *
 * C of _cache_c.pyx, declared there with `cdef extern from "_cache_owner.h"`. */
#ifndef ORMCACHE_CACHE_OWNER_H
#define ORMCACHE_CACHE_OWNER_H

#include <Python.h>

/* The class attribute `name` of tp (borrowed, NULL when absent): 1 if it is a plain value
   (no descriptor: nothing runs when an instance reads it), else 0. */
static int ormcache_class_attr(PyTypeObject *tp, PyObject *name, PyObject **value) {
    PyObject *v = _PyType_Lookup(tp, name);  /* also gives the type a version tag */
    if (v != NULL && Py_TYPE(v)->tp_descr_get != NULL) return 0;
    *value = v;
    return 1;
}
/* The version tag of tp, 0 when it has none (then nothing is cached for it). */
static unsigned int ormcache_type_tag(PyObject *type) {
    PyTypeObject *tp = (PyTypeObject *)type;
#ifdef Py_TPFLAGS_VALID_VERSION_TAG
    if (!PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG)) return 0;
#endif
    return tp->tp_version_tag;
}

/* How instances of `type` read `pool` and `_name`, decided by the type alone (as CPython's
   own attribute caches, valid while the type's version tag is *tag):
   0: ask getattr (a custom getattr, a descriptor named so, no version tag...);
   1: no instance dict: the class attributes *pool and *name (borrowed, NULL when absent);
   2: the instance dict's entries when there are, else the class attributes. */
static int ormcache_owner_kind(PyObject *type, PyObject *pool_name, PyObject *name_name,
                               PyObject **pool, PyObject **name, unsigned int *tag) {
    PyTypeObject *tp = (PyTypeObject *)type;
    unsigned int before;
    int kind = tp->tp_dictoffset != 0 ? 2 : 1;
    if (tp->tp_getattro != PyObject_GenericGetAttr) return 0;
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) kind = 2;
#endif
#ifdef Py_GIL_DISABLED
    if (kind == 2) return 0;  /* another thread may replace the instance dict under a read */
#endif
    if (!ormcache_class_attr(tp, pool_name, pool) || !ormcache_class_attr(tp, name_name, name)) return 0;
    before = ormcache_type_tag(type);
    /* once more: a lookup can compare keys with user code, which could change the class;
       an unchanged version tag proves it did not */
    if (!ormcache_class_attr(tp, pool_name, pool) || !ormcache_class_attr(tp, name_name, name)) return 0;
    *tag = ormcache_type_tag(type);
    return *tag != 0 && *tag == before ? kind : 0;
}

/* What an instance dict held the last time it was read: on CPython 3.9-3.12 a dict's
   version (PEP 509) is globally unique and changes with every change of the dict, so the
   same dict at the same version holds the same `pool` and `_name` (borrowed: the dict keeps
   them). Later versions hide the field (3.13's inline values may change without it). */
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030D0000
#define ORMCACHE_DICT_VERSIONS 1
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static inline uint64_t ormcache_dict_version(PyObject *dict) { return ((PyDictObject *)dict)->ma_version_tag; }
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif
typedef struct { PyObject *dict; uint64_t version; PyObject *pool; PyObject *name; } ormcache_seen;

/* The version of an exact dict where versions tell changes (else 0), and whether d is the
   dict `seen` still at `version`. */
static uint64_t ormcache_version_or_zero(PyObject *d) {
#ifdef ORMCACHE_DICT_VERSIONS
    return ormcache_dict_version(d);
#else
    (void)d;
    return 0;
#endif
}
static int ormcache_same_dict(PyObject *d, PyObject *seen, uint64_t version) {
    return version != 0 && d == seen && ormcache_version_or_zero(d) == version;
}

/* Where obj's instance dict pointer lives (NULL: no instance dict at all), read at the type's
 * dict offset where there is one, else through CPython; the owner rule's reads and the key
 * plans' attribute cache (_cache_keys.h) both find the dict here. */
static inline PyObject **ormcache_dict_ptr(PyObject *obj) {
    PyTypeObject *tp = Py_TYPE(obj);
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) && tp->tp_dictoffset > 0)
#else
    if (tp->tp_dictoffset > 0)
#endif
        return (PyObject **)((char *)obj + tp->tp_dictoffset);
    return _PyObject_GetDictPtr(obj);
}
/* The instance's own `pool` and `_name`: its __dict__'s entries, as new references (NULL when
   absent). 1: done; 0: cannot tell cheaply (then ask getattr); -1: an error (from a key's
   __eq__, as getattr would raise it). On 3.11+ a dict kept in the object's inline values is
   made a real dict once (as reading obj.__dict__ does): from then on it is read directly. */
static int ormcache_instance_attrs(PyObject *obj, PyObject *pool_name, PyObject *name_name,
                                   ormcache_seen *seen, PyObject **pool, PyObject **name) {
    PyObject **dictptr, *dict, *v;
#ifdef ORMCACHE_DICT_VERSIONS
    uint64_t version;
#endif
    *pool = *name = NULL;
    dictptr = ormcache_dict_ptr(obj);
    if (dictptr == NULL) return 0;
    dict = *dictptr;
    if (dict == NULL) return 1;  /* no instance attribute at all */
    if (!PyDict_CheckExact(dict)) return 0;
#ifdef ORMCACHE_DICT_VERSIONS
    version = ormcache_dict_version(dict);
    if (dict == seen->dict && version == seen->version) {
        Py_XINCREF(seen->pool);
        Py_XINCREF(seen->name);
        *pool = seen->pool;
        *name = seen->name;
        return 1;
    }
#endif
    Py_INCREF(dict);  /* a key's __eq__ could replace obj.__dict__ while we look */
    v = PyDict_GetItemWithError(dict, pool_name);
    if (v == NULL && PyErr_Occurred()) goto error;
    Py_XINCREF(v);
    *pool = v;
    v = PyDict_GetItemWithError(dict, name_name);
    if (v == NULL && PyErr_Occurred()) goto error;
    Py_XINCREF(v);
    *name = v;
#ifdef ORMCACHE_DICT_VERSIONS
    if (ormcache_dict_version(dict) == version && Py_REFCNT(dict) > 1) {  /* unchanged, and kept by obj */
        seen->dict = dict;
        seen->version = version;
        seen->pool = *pool;
        seen->name = *name;
    }
#endif
    Py_DECREF(dict);
    return 1;
error:
    Py_CLEAR(*pool);
    Py_DECREF(dict);
    return -1;
}

/* The attribute that ormcache_instance_attrs last read from obj's instance dict (`seen`),
   borrowed (the dict holds it), when that dict is still unchanged: no reference counting,
   no dict lookup. NULL when it cannot tell this way (then the full path runs), or when the
   dict has no such entry (*absent = 1). */
static PyObject *ormcache_seen_attr(PyObject *obj, ormcache_seen *seen, int *absent) {
    *absent = 0;
#ifdef ORMCACHE_DICT_VERSIONS
    PyTypeObject *tp = Py_TYPE(obj);
    PyObject **dictptr, *dict;
    if (seen->dict == NULL) return NULL;
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) && tp->tp_dictoffset > 0)
#else
    if (tp->tp_dictoffset > 0)
#endif
        dictptr = (PyObject **)((char *)obj + tp->tp_dictoffset);
    else
        dictptr = _PyObject_GetDictPtr(obj);
    if (dictptr == NULL) return NULL;
    dict = *dictptr;
    if (dict != seen->dict || ormcache_dict_version(dict) != seen->version) return NULL;
    *absent = seen->pool == NULL;
    return seen->pool;
#else
    (void)obj;
    (void)seen;
    return NULL;
#endif
}

/* A method's owner types -> slots: open addressing over a power-of-two array, linear
   probing, keyed by the type's address (never by its __hash__ or __eq__: no user code). The
   pointers are borrowed: the table's tuple of slots keeps the slots, which keep the types. */
typedef struct { PyObject *type; PyObject *slot; } ormcache_entry;
static inline size_t ormcache_type_index(PyObject *type, size_t mask) {
    size_t h = (size_t)type >> 4;  /* objects are 16-byte aligned */
    return (h ^ (h >> 9)) & mask;
}
/* the slot of `type`, NULL when none (the array always has an empty entry) */
static inline PyObject *ormcache_type_slot(ormcache_entry *entries, size_t mask, PyObject *type) {
    size_t i = ormcache_type_index(type, mask);
    for (;;) {
        PyObject *t = entries[i].type;
        if (t == type) return entries[i].slot;
        if (t == NULL) return NULL;
        i = (i + 1) & mask;
    }
}
/* 1 if `type` was added (0: it has a slot already, a more recent one) */
static inline int ormcache_type_add(ormcache_entry *entries, size_t mask, PyObject *type, PyObject *slot) {
    size_t i = ormcache_type_index(type, mask);
    for (;;) {
        if (entries[i].type == type) return 0;
        if (entries[i].type == NULL) { entries[i].type = type; entries[i].slot = slot; return 1; }
        i = (i + 1) & mask;
    }
}

/* The offset of the slot `name` of tp's instances (a __slots__ entry: a member descriptor
   of type T_OBJECT_EX that tp inherits or defines), 0 when `name` is anything else. Read
   directly while tp's version tag is unchanged, as the descriptor's __get__ would: the
   object stored there, or NULL (unset: getattr raises AttributeError). */
#include "structmember.h"  /* PyMemberDef before 3.12 */
#define ORMCACHE_T_OBJECT_EX 16
static Py_ssize_t ormcache_member_offset(PyObject *type, PyObject *name) {
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *v = _PyType_Lookup(tp, name);
    PyMemberDef *member;
    if (v == NULL || !Py_IS_TYPE(v, &PyMemberDescr_Type)) return 0;
    if (!PyType_IsSubtype(tp, PyDescr_TYPE(v))) return 0;
    member = ((PyMemberDescrObject *)v)->d_member;
    if (member->type != ORMCACHE_T_OBJECT_EX || member->offset <= 0) return 0;
    return member->offset;
}
static inline PyObject *ormcache_member_read(PyObject *obj, Py_ssize_t offset) {
    return *(PyObject **)((char *)obj + offset);  /* borrowed, NULL when unset */
}
/* 1 if `context` is a dict whose `get` is dict's own (a dict, or a subclass such as Odoo's
   frozendict that does not override it): its values are read from the dict's storage, and
   its version (ormcache_dict_version) tells a change, as for a dict. */
static int ormcache_plain_dict(PyObject *context, PyObject *get_name) {
    PyTypeObject *tp = Py_TYPE(context);
    if (tp == &PyDict_Type) return 1;
    if (!PyDict_Check(context)) return 0;
    return _PyType_Lookup(tp, get_name) == _PyType_Lookup(&PyDict_Type, get_name);
}

#endif
