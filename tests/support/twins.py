"""The compiled ``fastlru.Cache`` against its pure-Python twin: one differential harness for the
policy suites (``test_ttl.py``, ``test_weights.py``, ``test_policy_api_count.py``), and the fake
timer they and the copy tests share. No tests here."""
import random


class Clock:
    """A fake monotonic timer: ``clock.now`` seconds, advanced by hand; ``clock.calls`` counts
    the reads."""

    def __init__(self, now=1000.0):
        self.now = now
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.now

    def __reduce__(self):
        return Clock, (self.now,)


def apply(cache, clock, op):
    """Runs one ``(name, key, n)`` operation on ``cache`` (``tick``/``back`` move ``clock``);
    returns what it answered or the error it raised, to be compared between the engines."""
    name, k, n = op
    try:
        if name == "get":
            return ("ok", cache.get(k, "default"))
        if name == "set":
            cache[k] = "v" * n
            return ("ok", None)
        if name == "setdefault":
            return ("ok", cache.setdefault(k, "d" * n))
        if name == "pop":
            return ("ok", cache.pop(k, "none"))
        if name == "peek":
            return ("ok", cache.peek(k))
        if name == "contains":
            return ("ok", k in cache)
        if name == "popitem":
            return ("ok", cache.popitem())
        if name == "len":
            return ("ok", len(cache))
        if name == "tick":
            clock.now += n
            return ("ok", None)
        if name == "back":
            clock.now -= n / 2
            return ("ok", None)
        if name == "clear":
            cache.clear()
            return ("ok", None)
        if name == "count":
            cache.count = n
            return ("ok", cache.count, len(cache))
    except Exception as exc:  # noqa: BLE001 - compared between the engines
        return ("raised", type(exc).__name__, str(exc))
    raise AssertionError(name)


def compare(policy, count, options, sequence):
    """Runs ``sequence`` on a compiled ``Cache`` and on its twin, both built with ``count``,
    ``policy`` and ``options`` (a ``ttl`` gets a fake timer of its own in each): after every
    operation the answers, the evictions reported, the entries, the statistics and the weight
    must be the same, and both caches consistent."""
    from fastlru import _policy_c, _policy_py

    worlds = []
    for module in (_policy_c, _policy_py):
        evicted = []
        clock = Clock()
        kwargs = dict(options)
        if "ttl" in kwargs:
            kwargs["timer"] = clock
        cache = module.Cache(count, policy=policy,
                             on_evict=lambda k, v, evicted=evicted: evicted.append((k, v)),
                             **kwargs)
        worlds.append((cache, clock, evicted))
    (c, c_clock, c_ev), (p, p_clock, p_ev) = worlds
    for step, op in enumerate(sequence):
        where = "step %d %r" % (step, op)
        assert apply(c, c_clock, op) == apply(p, p_clock, op), where
        assert c_ev == p_ev, where
        assert c.items() == p.items(), where
        assert c.info() == p.info() and c.weight == p.weight, where
        c._check()
    c._check()
    p._check()


def pareto_sequence(seed, tick=0.0):
    """A long run for ``compare``: 4,000 gets of Pareto-distributed keys (0-199), each followed
    half the time by a set of a value of length 0-7, and with probability ``tick`` by a clock
    tick of one second; the same run for the same ``seed``."""
    rng = random.Random(seed)
    sequence = []
    for _ in range(4000):
        k = int(rng.paretovariate(0.9)) % 200
        sequence.append(("get", k, 0))
        if rng.random() < 0.5:
            sequence.append(("set", k, rng.randrange(8)))
        if tick and rng.random() < tick:
            sequence.append(("tick", 0, 1))
    return sequence
