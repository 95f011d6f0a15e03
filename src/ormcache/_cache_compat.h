/* Type flags and C-API differences between CPython versions.
 *
 * C of _cache_c.pyx, declared there with `cdef extern from "_cache_compat.h"`. */
#ifndef ORMCACHE_CACHE_COMPAT_H
#define ORMCACHE_CACHE_COMPAT_H

#include <Python.h>

/* Vectorcall for a Cython type: set the instance slot offset and the flags once, at import.
   METHOD_DESCRIPTOR lets obj.meth(...) call us with obj first, without a bound method. */
static void ormcache_enable_vectorcall(PyObject *type, Py_ssize_t offset) {
    PyTypeObject *tp = (PyTypeObject *)type;
    tp->tp_vectorcall_offset = offset;
    tp->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR;
    PyType_Modified(tp);
}

/* dict.setdefault(key, value) as a new reference (a borrowed one is unsafe on free-threaded
   builds, where another thread may remove the entry); NULL with an exception set. */
static PyObject *ormcache_setdefault(PyObject *d, PyObject *key, PyObject *value) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *result;
    if (PyDict_SetDefaultRef(d, key, value, &result) < 0) return NULL;
    return result;
#else
    PyObject *result = PyDict_SetDefault(d, key, value);
    Py_XINCREF(result);
    return result;
#endif
}

#endif
