/* The exceptions a failed lookup leaves pending: a miss, an error, or a BaseException.
 *
 * C of _cache_c.pyx, declared there with `cdef extern from "_cache_errors.h"`. */
#ifndef ORMCACHE_CACHE_ERRORS_H
#define ORMCACHE_CACHE_ERRORS_H

#include <Python.h>

/* After a failed lookup of key: 1 if it failed because the key is not there (the engine's
   own KeyError(key), cleared), 0 for any other Exception (left pending: a lookup error, as
   a KeyError raised by a key's __hash__ or __eq__), -1 for a BaseException that is not an
   Exception (KeyboardInterrupt...: left pending, to propagate). */
static int ormcache_is_miss_of(PyObject *exc, PyObject *key) {
    PyObject *args;
    if (exc == NULL || !Py_IS_TYPE(exc, (PyTypeObject *)PyExc_KeyError)) return 0;
    args = ((PyBaseExceptionObject *)exc)->args;  /* always a tuple */
    return args != NULL && PyTuple_GET_SIZE(args) == 1 && PyTuple_GET_ITEM(args, 0) == key;
}
static int ormcache_lookup_failure(PyObject *key) {
    int genuine;
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    if (!PyErr_ExceptionMatches(PyExc_KeyError)) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    genuine = ormcache_is_miss_of(exc, key);
    if (genuine) Py_DECREF(exc); else PyErr_SetRaisedException(exc);
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    genuine = ormcache_is_miss_of(value, key);
    if (genuine) { Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb); }
    else PyErr_Restore(type, value, tb);
#endif
    return genuine;
}
/* Lets Cython see the exception a raw C-API call left pending. */
static void ormcache_raise_pending(void) {}

/* The pending exception as an object (a new reference), leaving none set. */
static PyObject *ormcache_fetch_error(void) {
    PyObject *value;
#if PY_VERSION_HEX >= 0x030C0000
    value = PyErr_GetRaisedException();
#else
    PyObject *type, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    if (value == NULL) { Py_INCREF(Py_None); value = Py_None; }
    return value;
}

/* The kind of the pending exception of a failed lookup: 0 an Exception (reported, the
   method computed uncached), -1 any other BaseException (KeyboardInterrupt...: propagated). */
static int ormcache_error_kind(void) {
    return PyErr_ExceptionMatches(PyExc_Exception) ? 0 : -1;
}

#endif
