/* Tuple helpers of the known-hash lookup (`_get_known`).
 *
 * C of _lru_c.pyx, declared there with `cdef extern from "_plain_tuple.h"`. */
#ifndef FASTLRU_PLAIN_TUPLE_H
#define FASTLRU_PLAIN_TUPLE_H

#include <Python.h>

/* a tuple compared by tuple's own rich comparison (the tuple type, or a subclass that
   does not override it) */
static inline int fastlru_plain_tuple(PyObject *o) {
    return PyTuple_Check(o) && Py_TYPE(o)->tp_richcompare == PyTuple_Type.tp_richcompare;
}
#define fastlru_tuple_items(o) (((PyTupleObject *)(o))->ob_item)

#endif
