/* AwaitedValue's am_send slot (3.10+).
 *
 * C of _functools_c.pyx, declared there with `cdef extern from "_awaited_send.h"`. */
#ifndef FASTLRU_AWAITED_SEND_H
#define FASTLRU_AWAITED_SEND_H

#include <Python.h>

/* am_send (3.10+): `await` and asyncio's tasks take the value of a done AwaitedValue through
   PyIter_Send, without a StopIteration; earlier versions go through tp_iternext. */
typedef int (*fastlru_send_func)(PyObject *, PyObject *, PyObject **);
static void fastlru_enable_send(PyObject *type, fastlru_send_func send) {
#if PY_VERSION_HEX >= 0x030A0000
    PyTypeObject *tp = (PyTypeObject *)type;
    if (tp->tp_as_async != NULL) {
        tp->tp_as_async->am_send = (sendfunc)send;
        PyType_Modified(tp);
    }
#else
    (void)type; (void)send;
#endif
}

#endif
