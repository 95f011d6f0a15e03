/* Lock-free hits on free-threaded CPython (issue #20): a read index beside the arena.
 *
 * On Py_GIL_DISABLED builds a Cache whose hits write nothing (SIEVE, no ttl) keeps dicts,
 * key -> value, of the entries a hit may be served from without the critical section: those
 * whose visited bit is set, with a key of an exact built-in type (str, int, float, bytes: their
 * hash and == run no Python code). A reader looks the key up with PyDict_GetItemRef, CPython's
 * own lock-free read (its QSBR reclaims what writers replace); a hit found there writes nothing
 * shared but a per-thread counter on its own cache line.
 *
 * One dict per stripe (threads take stripes in turn), filled by that stripe's own locked hits
 * with the caller's own key object: a lookup by a key equal to, but not the same object as, the
 * dict's key increfs the dict's key (_Py_TryIncrefCompare), and on a key created by another
 * thread that is an atomic on a line both cores write, or, while that key was never shared,
 * a failed try and the dict's locked path on every read. The thread's own key makes it a local
 * (biased) reference count. Each stripe is a subset of the arena; removals go to every stripe.
 *
 * The index is only ever a subset of the arena, and only the arena is the truth:
 * - every change that could make an index entry wrong (an entry freed, its value replaced, its
 *   visited bit cleared, clear()) is recorded, section held, as a key to take out of the index,
 *   and counted in `pending`; readers fall back to the locked path while `pending` is not 0 or
 *   `gen` moved during their lookup;
 * - the records are applied (dict pops) after the section ends, under `sync` (a plain mutex that
 *   orders them with publications), then `gen` is bumped and `pending` decremented;
 * - an entry enters the index only by a locked hit that found its bit set: it is checked again
 *   under the section, with `sync` held, just before the dict store (fastlru_ft_begin_publish).
 * Dict operations never run inside the Cache's critical section: blocking on the dict's own lock
 * would suspend that section mid-operation. GIL builds compile all of this to nothing.
 */
#ifndef FASTLRU_FT_READ_H
#define FASTLRU_FT_READ_H

#include <Python.h>
#include <stdint.h>

/* Hands a new reference to Cython as an object it owns (declared returning object). */
static inline PyObject *fastlru_ft_steal(PyObject *op) { return op; }

#ifdef Py_GIL_DISABLED
#define FASTLRU_FT 1
#define FASTLRU_FT_STRIPES 16
#define FASTLRU_FT_LINE 64

typedef struct {
    uint64_t n;           /* lock-free hits of this stripe (atomic) */
    PyObject *index;      /* dict: key -> value (a strong reference to each), or NULL */
    uint64_t claim;       /* the claim of the thread whose keys index holds (atomic) */
    char pad[FASTLRU_FT_LINE - 2 * sizeof(uint64_t) - sizeof(PyObject *)];
} fastlru_ft_stripe;

typedef struct {
    /* read by every lock-free hit: one line, written only by writers */
    Py_ssize_t pending;   /* records not yet applied to the indexes (atomic) */
    uint64_t gen;         /* batches applied (atomic) */
    int on;               /* index in use (atomic) */
    char pad0[FASTLRU_FT_LINE - sizeof(Py_ssize_t) - sizeof(uint64_t) - sizeof(int)];
    fastlru_ft_stripe hits[FASTLRU_FT_STRIPES];  /* each thread's index and hits */
    /* writers only */
    PyMutex sync;         /* orders batches and publications */
    uintptr_t owner;      /* thread holding sync: a re-entrant call skips, never deadlocks */
    PyObject **todo;      /* keys to take out of index (strong references; section held) */
    Py_ssize_t ntodo, cap;
    Py_ssize_t counted;   /* pending increments the todo batch stands for */
    int clear_all;        /* the whole index goes (clear(), or a record without memory) */
} fastlru_ft;

/* Stripes are handed to threads one each, process-wide, and taken back when a thread's state
 * is cleared (its exit): a stripe's dict is only ever written and read by one living thread, so
 * its keys are that thread's (see above). A thread that finds none free takes the lock. */
#define FASTLRU_FT_NONE (FASTLRU_FT_STRIPES + 1)
static uint32_t fastlru_ft_taken;                   /* bit s: stripe s belongs to a thread */
static uint64_t fastlru_ft_claims;                  /* stripes handed out so far */
static _Thread_local unsigned int fastlru_ft_slot;  /* 1 + this thread's stripe, 0: none yet */
static _Thread_local uint64_t fastlru_ft_claim;     /* this thread's claim: a stripe's dict left
                                                       by an earlier claim is not read, replaced */

static void fastlru_ft_release_slot(PyObject *capsule)
{
    uintptr_t s = (uintptr_t)PyCapsule_GetContext(capsule);
    uint32_t old;
    if (s == 0 || s > FASTLRU_FT_STRIPES)
        return;
    old = _Py_atomic_load_uint32(&fastlru_ft_taken);
    while (!_Py_atomic_compare_exchange_uint32(&fastlru_ft_taken, &old, old & ~(1u << (s - 1))))
        ;
    if (fastlru_ft_slot == s)
        fastlru_ft_slot = FASTLRU_FT_NONE;  /* a __del__ run later by this exit takes the lock */
}

static unsigned int fastlru_ft_claim_slot(void)
{
    uint32_t old = _Py_atomic_load_uint32(&fastlru_ft_taken);
    unsigned int s;
    PyObject *dict, *capsule, *exc;
    do {
        for (s = 0; s < FASTLRU_FT_STRIPES && (old & (1u << s)); s++)
            ;
        if (s == FASTLRU_FT_STRIPES)
            return FASTLRU_FT_NONE;
    } while (!_Py_atomic_compare_exchange_uint32(&fastlru_ft_taken, &old, old | (1u << s)));
    s += 1;
    fastlru_ft_claim = _Py_atomic_add_uint64(&fastlru_ft_claims, 1) + 1;
    /* the thread state's dict is cleared when the thread ends: the capsule gives s back */
    exc = PyErr_GetRaisedException();
    dict = PyThreadState_GetDict();
    capsule = PyCapsule_New(&fastlru_ft_taken, "fastlru._ft_slot", fastlru_ft_release_slot);
    if (capsule == NULL || PyCapsule_SetContext(capsule, (void *)(uintptr_t)s) < 0 || dict == NULL
            || PyDict_SetItemString(dict, "fastlru._ft_slot", capsule) < 0) {
        PyErr_Clear();
        if (capsule != NULL)
            PyCapsule_SetContext(capsule, NULL);  /* its destructor must not free s twice */
        old = _Py_atomic_load_uint32(&fastlru_ft_taken);
        while (!_Py_atomic_compare_exchange_uint32(&fastlru_ft_taken, &old, old & ~(1u << (s - 1))))
            ;
        s = FASTLRU_FT_NONE;
    }
    Py_XDECREF(capsule);
    PyErr_SetRaisedException(exc);
    return s;
}

/* This thread's stripe, or NULL: none left (the cache takes the lock for this thread). */
static inline fastlru_ft_stripe *fastlru_ft_stripe_of(fastlru_ft *ft)
{
    unsigned int s = fastlru_ft_slot;
    if (s == 0) {
        s = fastlru_ft_claim_slot();
        fastlru_ft_slot = s;
    }
    return s <= FASTLRU_FT_STRIPES ? &ft->hits[s - 1] : NULL;
}

/* The aligned block, or NULL (no exception set): the cache then always takes the lock. */
static fastlru_ft *fastlru_ft_new(void)
{
    void *mem = NULL;
    fastlru_ft *ft;
    if (posix_memalign(&mem, FASTLRU_FT_LINE, sizeof(fastlru_ft)) != 0)
        return NULL;
    ft = (fastlru_ft *)mem;
    memset(ft, 0, sizeof(fastlru_ft));
    return ft;
}

static void fastlru_ft_free(fastlru_ft *ft)
{
    Py_ssize_t i;
    if (ft == NULL)
        return;
    for (i = 0; i < FASTLRU_FT_STRIPES; i++)
        Py_CLEAR(ft->hits[i].index);
    for (i = 0; i < ft->ntodo; i++)
        Py_DECREF(ft->todo[i]);
    PyMem_Free(ft->todo);
    free(ft);
}

static inline int fastlru_ft_indexable(PyObject *key)
{
    PyTypeObject *t = Py_TYPE(key);
    return t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type || t == &PyBytes_Type;
}

/* Section held: from now on the index may serve hits. */
static inline void fastlru_ft_enable(fastlru_ft *ft)
{
    if (ft != NULL)
        _Py_atomic_store_int(&ft->on, 1);
}

static inline int fastlru_ft_on(fastlru_ft *ft)
{
    return ft != NULL && _Py_atomic_load_int_relaxed(&ft->on);
}

/* A lock-free hit: a new reference to key's value, or NULL (take the locked path; no
 * exception set). Counts the hit. */
static inline PyObject *fastlru_ft_get(fastlru_ft *ft, PyObject *key)
{
    PyObject *value, *index;
    fastlru_ft_stripe *stripe;
    uint64_t gen;
    int r;
    if (ft == NULL || !fastlru_ft_indexable(key) || !_Py_atomic_load_int_relaxed(&ft->on)
            || _Py_atomic_load_ssize(&ft->pending) != 0)
        return NULL;
    stripe = fastlru_ft_stripe_of(ft);
    if (stripe == NULL)
        return NULL;
    if (_Py_atomic_load_uint64(&stripe->claim) != fastlru_ft_claim)
        return NULL;  /* filled by a thread that ended: this thread's first hit replaces it */
    index = (PyObject *)_Py_atomic_load_ptr(&stripe->index);
    if (index == NULL)
        return NULL;
    gen = _Py_atomic_load_uint64(&ft->gen);
    r = PyDict_GetItemRef(index, key, &value);
    if (r <= 0) {
        if (r < 0)
            PyErr_Clear();
        return NULL;
    }
    if (_Py_atomic_load_ssize(&ft->pending) != 0 || _Py_atomic_load_uint64(&ft->gen) != gen) {
        Py_DECREF(value);
        return NULL;
    }
    _Py_atomic_add_uint64(&stripe->n, 1);
    return value;
}

/* Section held, no Python code: key may be in the index and its entry is changing. */
static inline void fastlru_ft_record(fastlru_ft *ft, PyObject *key)
{
    PyObject **todo;
    Py_ssize_t cap;
    if (ft == NULL || !ft->on || !fastlru_ft_indexable(key))
        return;
    _Py_atomic_add_ssize(&ft->pending, 1);
    ft->counted += 1;
    if (ft->clear_all)
        return;
    if (ft->ntodo == ft->cap) {
        cap = ft->cap ? 2 * ft->cap : 8;
        todo = (cap < PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *))
            ? (PyObject **)PyMem_Realloc(ft->todo, cap * sizeof(PyObject *)) : NULL;
        if (todo == NULL) {
            ft->clear_all = 1;  /* no memory to remember the key: the whole index goes */
            return;
        }
        ft->todo = todo;
        ft->cap = cap;
    }
    Py_INCREF(key);
    ft->todo[ft->ntodo++] = key;
}

/* Section held: the whole index goes (clear()). */
static inline void fastlru_ft_record_clear(fastlru_ft *ft)
{
    if (ft == NULL || !ft->on)
        return;
    _Py_atomic_add_ssize(&ft->pending, 1);
    ft->counted += 1;
    ft->clear_all = 1;
}

/* Takes sync; 0 if this thread holds it already (a call from a __del__ run by a batch). */
static inline int fastlru_ft_lock(fastlru_ft *ft)
{
    uintptr_t me = _Py_ThreadId();
    if (_Py_atomic_load_uintptr_relaxed(&ft->owner) == me)
        return 0;
    PyMutex_Lock(&ft->sync);
    _Py_atomic_store_uintptr_relaxed(&ft->owner, me);
    return 1;
}

static inline void fastlru_ft_unlock(fastlru_ft *ft)
{
    _Py_atomic_store_uintptr_relaxed(&ft->owner, 0);
    PyMutex_Unlock(&ft->sync);
}

/* Section not held: applies the recorded changes to the index. The exception set, if any, is
 * kept; the references the index drops are released once sync is free. */
static void fastlru_ft_drain(fastlru_ft *ft, PyObject *cache)
{
    PyCriticalSection cs;
    PyObject **todo, **values = NULL, *dropped = NULL, *exc, *v, *index;
    Py_ssize_t ntodo, counted, i, nvalues;
    int clear_all, r, s;
    if (ft == NULL || _Py_atomic_load_ssize(&ft->pending) == 0)
        return;
    if (!fastlru_ft_lock(ft))
        return;  /* the batch running in this thread (or the next call) applies it */
    exc = PyErr_GetRaisedException();
    for (;;) {
        PyCriticalSection_Begin(&cs, cache);
        todo = ft->todo;
        ntodo = ft->ntodo;
        counted = ft->counted;
        clear_all = ft->clear_all;
        ft->todo = NULL;
        ft->ntodo = ft->cap = ft->counted = 0;
        ft->clear_all = 0;
        PyCriticalSection_End(&cs);
        if (counted == 0)
            break;
        /* every removal from every stripe; the values they held are released once sync is
         * free (a value's __del__ may use the cache). */
        nvalues = 0;
        if (clear_all) {
            dropped = PyList_New(0);  /* holds the stripes' dicts while they let go */
            if (dropped == NULL)
                PyErr_Clear();
            for (s = 0; s < FASTLRU_FT_STRIPES; s++) {
                index = ft->hits[s].index;
                if (index == NULL || PyDict_GET_SIZE(index) == 0)
                    continue;
                v = PyDict_Copy(index);
                if (v == NULL || dropped == NULL || PyList_Append(dropped, v) < 0)
                    PyErr_Clear();  /* out of memory: the values go now, sync held */
                Py_XDECREF(v);
                PyDict_Clear(index);
            }
        }
        else if (ntodo) {
            values = ntodo < PY_SSIZE_T_MAX / (FASTLRU_FT_STRIPES * (Py_ssize_t)sizeof(PyObject *))
                ? (PyObject **)PyMem_Malloc(ntodo * FASTLRU_FT_STRIPES * sizeof(PyObject *)) : NULL;
            for (s = 0; s < FASTLRU_FT_STRIPES; s++) {
                index = ft->hits[s].index;
                if (index == NULL)
                    continue;
                for (i = 0; i < ntodo && PyDict_GET_SIZE(index); i++) {
                    v = NULL;
                    r = PyDict_Pop(index, todo[i], values ? &v : NULL);
                    if (r < 0)
                        PyErr_Clear();  /* cannot happen with these key types; the next get heals */
                    if (values && v != NULL)
                        values[nvalues++] = v;
                }
            }
        }
        _Py_atomic_add_uint64(&ft->gen, 1);
        _Py_atomic_add_ssize(&ft->pending, -counted);
        fastlru_ft_unlock(ft);
        for (i = 0; i < nvalues; i++)
            Py_DECREF(values[i]);
        for (i = 0; i < ntodo; i++)
            Py_DECREF(todo[i]);
        PyMem_Free(values);
        values = NULL;
        PyMem_Free(todo);
        Py_CLEAR(dropped);
        if (_Py_atomic_load_ssize(&ft->pending) == 0 || !fastlru_ft_lock(ft))
            goto done;
    }
    fastlru_ft_unlock(ft);
done:
    PyErr_SetRaisedException(exc);
}

/* Publication, in three steps: fastlru_ft_lock (0: skip), the check of the entry under the
 * section (by the caller), then fastlru_ft_publish (section not held), which stores the value
 * the check found in this thread's stripe, under the caller's key, and releases sync. */
static void fastlru_ft_publish(fastlru_ft *ft, PyObject *key, PyObject *value)
{
    PyObject *exc = PyErr_GetRaisedException();
    fastlru_ft_stripe *stripe = fastlru_ft_stripe_of(ft);
    PyObject *index = stripe != NULL ? stripe->index : NULL, *old = NULL;
    if (stripe != NULL && (index == NULL || stripe->claim != fastlru_ft_claim)) {
        old = index;  /* another thread's keys: released once sync is free */
        index = PyDict_New();
        _Py_atomic_store_ptr(&stripe->index, index);
        _Py_atomic_store_uint64(&stripe->claim, fastlru_ft_claim);
    }
    if (index != NULL && PyDict_SetItem(index, key, value) < 0)
        PyErr_Clear();  /* out of memory: the key is not indexed, its hits take the lock */
    else if (stripe != NULL && index == NULL)
        PyErr_Clear();
    fastlru_ft_unlock(ft);
    Py_XDECREF(old);
    PyErr_SetRaisedException(exc);
}

static inline uint64_t fastlru_ft_hits(fastlru_ft *ft)
{
    uint64_t n = 0;
    int i;
    if (ft == NULL)
        return 0;
    for (i = 0; i < FASTLRU_FT_STRIPES; i++)
        n += _Py_atomic_load_uint64_relaxed(&ft->hits[i].n);
    return n;
}

static inline void fastlru_ft_clear_hits(fastlru_ft *ft)
{
    int i;
    if (ft == NULL)
        return;
    for (i = 0; i < FASTLRU_FT_STRIPES; i++)
        _Py_atomic_store_uint64_relaxed(&ft->hits[i].n, 0);
}

static inline int fastlru_ft_traverse(fastlru_ft *ft, visitproc visit, void *arg)
{
    int s;
    if (ft != NULL)
        for (s = 0; s < FASTLRU_FT_STRIPES; s++)
            Py_VISIT(ft->hits[s].index);
    return 0;
}

/* tp_clear: the cache is garbage, no reader is left; the indexes let their values go. */
static inline void fastlru_ft_gc_clear(fastlru_ft *ft)
{
    int s;
    if (ft != NULL)
        for (s = 0; s < FASTLRU_FT_STRIPES; s++)
            if (ft->hits[s].index != NULL)
                PyDict_Clear(ft->hits[s].index);
}

/* _check(): stripe s's index (borrowed, or NULL) and the records not yet applied. */
static inline PyObject *fastlru_ft_index(fastlru_ft *ft, int s)
{
    return ft != NULL && s >= 0 && s < FASTLRU_FT_STRIPES ? ft->hits[s].index : NULL;
}
static inline Py_ssize_t fastlru_ft_pending(fastlru_ft *ft) { return ft != NULL ? _Py_atomic_load_ssize(&ft->pending) : 0; }

#else /* GIL builds: no index, every hit takes the (empty) section as before */

#define FASTLRU_FT 0
#define FASTLRU_FT_STRIPES 0
typedef struct { char unused; } fastlru_ft;
static inline fastlru_ft *fastlru_ft_new(void) { return NULL; }
static inline void fastlru_ft_free(fastlru_ft *ft) { (void)ft; }
static inline void fastlru_ft_enable(fastlru_ft *ft) { (void)ft; }
static inline int fastlru_ft_on(fastlru_ft *ft) { (void)ft; return 0; }
static inline PyObject *fastlru_ft_get(fastlru_ft *ft, PyObject *key) { (void)ft; (void)key; return NULL; }
static inline int fastlru_ft_indexable(PyObject *key) { (void)key; return 0; }
static inline void fastlru_ft_record(fastlru_ft *ft, PyObject *key) { (void)ft; (void)key; }
static inline void fastlru_ft_record_clear(fastlru_ft *ft) { (void)ft; }
static inline int fastlru_ft_lock(fastlru_ft *ft) { (void)ft; return 0; }
static inline void fastlru_ft_unlock(fastlru_ft *ft) { (void)ft; }
static inline void fastlru_ft_drain(fastlru_ft *ft, PyObject *cache) { (void)ft; (void)cache; }
static inline void fastlru_ft_publish(fastlru_ft *ft, PyObject *key, PyObject *value) { (void)ft; (void)key; (void)value; }
static inline uint64_t fastlru_ft_hits(fastlru_ft *ft) { (void)ft; return 0; }
static inline void fastlru_ft_clear_hits(fastlru_ft *ft) { (void)ft; }
static inline int fastlru_ft_traverse(fastlru_ft *ft, visitproc visit, void *arg) { (void)ft; (void)visit; (void)arg; return 0; }
static inline void fastlru_ft_gc_clear(fastlru_ft *ft) { (void)ft; }
static inline PyObject *fastlru_ft_index(fastlru_ft *ft, int s) { (void)ft; (void)s; return NULL; }
static inline Py_ssize_t fastlru_ft_pending(fastlru_ft *ft) { (void)ft; return 0; }

#endif
#endif
