/* Critical sections for the LRU engine.
 *
 * On free-threaded CPython (3.13t+) a per-object critical section guards the engine's pointer
 * updates; the engine ends it before any Python code runs (a key's __eq__, on_evict, a dropped
 * reference) and begins it again afterwards. Under the GIL, code that runs no Python is already
 * atomic, so these compile to nothing.
 */
#ifndef FASTLRU_SYNC_H
#define FASTLRU_SYNC_H

#include <Python.h>

#ifdef Py_GIL_DISABLED
typedef PyCriticalSection fastlru_cs;
static inline void fastlru_cs_begin(fastlru_cs *cs, PyObject *op) { PyCriticalSection_Begin(cs, op); }
static inline void fastlru_cs_end(fastlru_cs *cs) { PyCriticalSection_End(cs); }
#else
typedef struct { char unused; } fastlru_cs;
static inline void fastlru_cs_begin(fastlru_cs *cs, PyObject *op) { (void)cs; (void)op; }
static inline void fastlru_cs_end(fastlru_cs *cs) { (void)cs; }
#endif

/* 2**64 / golden ratio: Fibonacci hashing spreads sequential hashes over the table. */
#define FASTLRU_FIB 0x9E3779B97F4A7C15ULL

#endif
