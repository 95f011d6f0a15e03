"""The timed loops. Every contender runs the very same bytecode for a workload, dict included;
only ``functools.lru_cache`` needs its own shape (a call instead of a subscript)."""


def get_each(c, keys):
    for k in keys:
        c[k]


def call_each(f, keys):
    for k in keys:
        f(k)


def set_each(c, keys, value):
    for k in keys:
        c[k] = value


def get_or_set_each(c, keys):
    for k in keys:
        v = c.get(k)
        if v is None:
            c[k] = k


def get_or_set_each_locked(c, keys, lock):
    # For caches that are not thread-safe (cachetools): the lock the user would have to add.
    for k in keys:
        with lock:
            v = c.get(k)
            if v is None:
                c[k] = k


def count_misses(c, keys):
    """Untimed: the get-or-set loop, counting misses (to report hit ratios)."""
    misses = 0
    for k in keys:
        v = c.get(k)
        if v is None:
            misses += 1
            c[k] = k
    return misses
