"""Differential fuzz: seeded random operation sequences run on the compiled engine and on the
pure-Python twin side by side; every result (value or exception type), every callback and the
full order (``items()``) must agree after each step.

Sequences include keys whose ``__eq__``/``__hash__`` read and change the cache, ``on_evict``
callbacks that do the same, count changes, weights up to ``sys.maxsize``, pickling, copying,
iteration, subclass instances, and expiry (``ttl``) on a fake timer that moves forward,
stands still, goes back, or fails. Each sequence is drawn first, as plain data, then replayed
on each engine with its own objects ("worlds"); the two records are compared step by step.

The fuzz runs in a subprocess (a crash fails the test, not the runner):
``FASTLRU_FUZZ_SEEDS`` (default 2000) sets how many seeds; ``python tests/fastlru/test_lru_fuzz.py
FIRST COUNT`` replays seeds by hand and prints the first disagreement.
"""
import os
import pickle
import random
import subprocess
import sys

import pytest

DEFAULT_SEEDS = 2000
BIG = sys.maxsize // 2 + 1  # two such weights overflow a Py_ssize_t sum


class Boom(Exception):
    pass


# ---------------------------------------------------------------- the objects of one world

WORLDS = {}  # world name -> World; callbacks and keys find their world by name (picklable)


class Liar(int):
    """An int whose comparisons all say False (the engines must convert, not compare, it)."""

    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = lambda self, other: False
    __ne__ = lambda self, other: True
    __hash__ = int.__hash__


def weight_of(value):
    if value % 13 == 0:
        return BIG
    return Liar(value % 4) if value % 5 == 0 else value % 4


class Key:
    """Equal to any Key of the same name; hashes to ``h``. ``eq_script``/``hash_script`` map the
    n-th call of ``__eq__``/``__hash__`` on this object to an action on the world's cache."""

    def __init__(self, world, name, h, eq_script, hash_script):
        self.world, self.name, self.h = world, name, h
        self.eq_script, self.hash_script = eq_script, hash_script
        self.eq_calls = self.hash_calls = 0

    def __hash__(self):
        action = self.hash_script.get(self.hash_calls)
        self.hash_calls += 1
        if action is not None:
            WORLDS[self.world].act(action, ("hash", self.name))
        return self.h

    def __eq__(self, other):
        if not isinstance(other, Key):
            return NotImplemented
        action = self.eq_script.get(self.eq_calls)
        self.eq_calls += 1
        if action is not None:
            if action[0] == "raise":
                raise Boom(self.name)
            WORLDS[self.world].act(action, ("eq", self.name))
        return self.name == other.name

    def __reduce__(self):
        return Key, (self.world, self.name, self.h, self.eq_script, self.hash_script)

    def __repr__(self):
        return f"K({self.name})"


class Evict:
    """on_evict: records the pair, and runs the world's eviction script."""

    def __init__(self, world):
        self.world = world

    def __call__(self, key, value):
        WORLDS[self.world].evicted(key, value)

    def __reduce__(self):
        return Evict, (self.world,)

    def __repr__(self):
        return "Evict()"


class Clock:
    """timer: the world's fake time; raises Boom while the world says it is broken."""

    def __init__(self, world):
        self.world = world

    def __call__(self):
        world = WORLDS[self.world]
        if world.timer_broken:
            raise Boom("timer")
        return world.now

    def __reduce__(self):
        return Clock, (self.world,)

    def __repr__(self):
        return "Clock()"


_SUBCLASSES = {}


def _subclass(base):
    """A subclass of ``base`` that overrides what user code calls (one per base, picklable)."""
    if base not in _SUBCLASSES:
        class Sub(base):
            def __setitem__(self, key, value):
                super().__setitem__(key, value)

            def __getitem__(self, key):
                return super().__getitem__(key)

        Sub.__qualname__ = Sub.__name__ = f"Sub{len(_SUBCLASSES)}"
        globals()[Sub.__name__] = Sub
        _SUBCLASSES[base] = Sub
    return _SUBCLASSES[base]


def canon(obj):
    """What is compared across worlds: keys by name, exceptions by type, LRUs by items."""
    if isinstance(obj, Key):
        return ("K", obj.name)
    if isinstance(obj, BaseException):
        return ("!", type(obj).__name__)
    if isinstance(obj, list):
        return [canon(x) for x in obj]
    if isinstance(obj, tuple):
        return tuple(canon(x) for x in obj)
    if hasattr(obj, "_check") and hasattr(obj, "items"):
        return ("LRU", canon(obj.items()), obj.count, obj.maxweight, obj.ttl)
    if isinstance(obj, (int, str, bool, type(None))):
        return obj
    return ("?", type(obj).__name__)


class World:
    def __init__(self, name, module, plan):
        self.name = name
        self.module = module
        self.log = []
        self.iters = []
        self.evict_calls = 0
        self.evict_script = plan["evict_script"]
        self.now = 100
        self.timer_broken = False
        WORLDS[name] = self
        self.keys = [self.make_key(spec) for spec in plan["keys"]]
        cls = module.LRU
        if plan["subclass"]:
            cls = _subclass(cls)
        kw = {}
        if plan["on_evict"]:
            kw["on_evict"] = Evict(name)
        if plan["maxweight"] is not None:
            kw["maxweight"] = plan["maxweight"]
            if plan["getsizeof"]:
                kw["getsizeof"] = weight_of
        if plan.get("ttl") is not None:
            kw["ttl"] = plan["ttl"]
            kw["timer"] = Clock(name)
        self.lru = None
        pairs = [(self.keys[k], v) for k, v in plan["pairs"]]
        if plan["pre_init"]:
            # used before __init__ (as a crafted pickle can), emptied, then initialised
            self.lru = cls.__new__(cls)
            self.log.append(("pre", canon(self.call(lambda: self.lru.update(pairs))),
                             canon(self.call(self.lru.items))))
            if plan["pre_init"] == "emptied":
                self.call(self.lru.clear)
            self.log.append(("init", canon(self.call(lambda: self.lru.__init__(
                Liar(plan["count"]), pairs, **kw)))))
        else:
            self.lru = self.call(lambda: cls(Liar(plan["count"]), pairs, **kw))

    def make_key(self, spec):
        if spec[0] == "K":
            return Key(self.name, *spec[1:])
        return spec[1]

    def key(self, kid, fresh):
        key = self.keys[kid]
        if fresh and isinstance(key, Key):
            return Key(self.name, key.name, key.h, key.eq_script, key.hash_script)
        return key

    def call(self, fn):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - compared by type
            return exc

    def act(self, action, where):
        """An action run from inside a key's __eq__/__hash__ or on_evict."""
        lru = self.lru
        if lru is None:
            return
        op = action[0]
        if op == "peek":
            fn = lambda: lru.peek(self.keys[action[1]])  # noqa: E731
        elif op == "get":
            fn = lambda: lru.get(self.keys[action[1]])  # noqa: E731
        elif op == "set":
            fn = lambda: lru.__setitem__(self.keys[action[1]], action[2])  # noqa: E731
        elif op == "del":
            fn = lambda: lru.pop(self.keys[action[1]], None)  # noqa: E731
        elif op == "count":
            fn = lambda: setattr(lru, "count", action[1])  # noqa: E731
        elif op == "clear":
            fn = lru.clear
        else:
            fn = lambda: list(lru)  # noqa: E731
        self.log.append(("hook", where, action, canon(self.call(fn))))

    def evicted(self, key, value):
        self.log.append(("evicted", canon(key), value))
        action = self.evict_script.get(self.evict_calls)
        self.evict_calls += 1
        if action is not None:
            self.act(action, ("evict",))

    def step(self, op):
        """Runs one operation; returns (result, callbacks, state) in comparable form."""
        self.log = []
        lru = self.lru
        name = op[0]
        if name in ("copy", "pickle", "copy-swap", "pickle-swap"):
            if name.startswith("copy"):
                result = self.call(lru.copy)
            else:
                result = self.call(lambda: pickle.loads(pickle.dumps(lru)))
            if name.endswith("swap") and not isinstance(result, Exception):
                self.lru = result
                self.iters = []
        elif name == "next":
            if self.iters:
                result = self.call(lambda: next(self.iters[op[1] % len(self.iters)]))
            else:
                result = None
        elif name == "tick":
            self.now += op[1]
            result = None
        elif name == "broken-timer":
            self.timer_broken = True
            try:
                result = self.call(lambda: OPS[op[1]](self, lru, *op[2:]))
            finally:
                self.timer_broken = False
        elif name == "iter":
            result = self.call(lambda: iter(lru) if op[1] else reversed(lru))
            if not isinstance(result, Exception):
                self.iters.append(result)
                result = None
        else:
            result = self.call(lambda: OPS[name](self, lru, *op[1:]))
        state = self.call(lambda: (canon(self.lru.items()), len(self.lru), tuple(self.lru.info()),
                                   self.lru.weight, self.lru.count, self.lru.maxweight))
        check = self.call(self.lru._check)
        return canon(result), self.log, canon(state), canon(check)


OPS = {
    "setitem": lambda w, lru, k, v, f: lru.__setitem__(w.key(k, f), v),
    "getitem": lambda w, lru, k, f: lru[w.key(k, f)],
    "get": lambda w, lru, k, f: lru.get(w.key(k, f), "dflt"),
    "peek": lambda w, lru, k, f: lru.peek(w.key(k, f)),
    "contains": lambda w, lru, k, f: w.key(k, f) in lru,
    "delitem": lambda w, lru, k, f: lru.__delitem__(w.key(k, f)),
    "pop": lambda w, lru, k, f: lru.pop(w.key(k, f)),
    "pop-default": lambda w, lru, k, f: lru.pop(w.key(k, f), "dflt"),
    "pop-keyword": lambda w, lru, k, f: lru.pop(key=w.key(k, f)),
    "popitem": lambda w, lru: lru.popitem(),
    "setdefault": lambda w, lru, k, v, f: lru.setdefault(w.key(k, f), v),
    "update-pairs": lambda w, lru, pairs: lru.update([(w.key(k, False), v) for k, v in pairs]),
    "update-kwargs": lambda w, lru, v: lru.update(kw=v),
    # many plain keys at once: grows the arena, so a later count cut compacts it
    "bulk": lambda w, lru, n: lru.update([(1000 + i, i) for i in range(n)]),
    "clear": lambda w, lru: lru.clear(),
    "count": lambda w, lru, n: setattr(lru, "count", n),
    "len": lambda w, lru: len(lru),
    "keys": lambda w, lru: lru.keys(),
    "values": lambda w, lru: lru.values(),
    "list": lambda w, lru: list(lru),
    "reversed": lambda w, lru: list(reversed(lru)),
    "eq-dict": lambda w, lru: lru == dict(lru.items()),
    "eq-copy": lambda w, lru: lru == lru.copy(),
    "repr": lambda w, lru: repr(lru).split("(", 1)[1],
    "unhashable": lambda w, lru: lru.__setitem__([1], 1),
    "reinit": lambda w, lru: lru.__init__(3),
}


# ---------------------------------------------------------------- drawing a sequence

ACTIONS = ("peek", "get", "set", "del", "count", "clear", "iterate")


def draw_action(rnd, nkeys):
    op = rnd.choice(ACTIONS)
    if op in ("peek", "get", "del"):
        return (op, rnd.randrange(nkeys))
    if op == "set":
        return (op, rnd.randrange(nkeys), rnd.randrange(40))
    if op == "count":
        return (op, rnd.randrange(1, 8))
    return (op,)


def draw_script(rnd, nkeys, chance):
    script = {}
    for call in range(6):
        if rnd.random() < chance:
            script[call] = ("raise",) if rnd.random() < 0.1 else draw_action(rnd, nkeys)
    return script


def draw_plan(seed):
    rnd = random.Random(seed)
    nkeys = rnd.randrange(3, 14)
    hostile = rnd.random() < 0.7
    keys = []
    for i in range(nkeys):
        kind = rnd.random()
        if kind < 0.25:
            keys.append(("plain", i))
        elif kind < 0.35:
            keys.append(("plain", f"s{i}"))
        elif kind < 0.4:
            keys.append(("plain", (i, "t")))
        else:
            # few distinct hashes: Keys collide (and collide with small ints)
            eq = draw_script(rnd, nkeys, 0.15) if hostile else {}
            hs = draw_script(rnd, nkeys, 0.05) if hostile else {}
            keys.append(("K", f"k{i}", rnd.randrange(3), eq, hs))
    maxweight = rnd.choice([None, None, None, 0, 5, 12, sys.maxsize, 10**30])
    plan = {
        "keys": keys,
        "count": rnd.choice([1, 2, 3, 5, 8, 100, 1000, 0, -1]),
        "maxweight": maxweight,
        "getsizeof": maxweight is not None and rnd.random() < 0.8,
        "on_evict": rnd.random() < 0.7,
        "subclass": rnd.random() < 0.3,
        "pre_init": rnd.choice([None] * 8 + ["used", "emptied"]),
        "ttl": rnd.choice([None, None, None, 1, 5, 30, 2.5]),
        "evict_script": draw_script(rnd, nkeys, 0.2) if hostile else {},
        "pairs": [(rnd.randrange(nkeys), rnd.randrange(40)) for _ in range(rnd.randrange(4))],
    }
    ops = []
    for _ in range(rnd.randrange(10, 60)):
        name = rnd.choice(OP_NAMES)
        k = rnd.randrange(nkeys)
        fresh = rnd.random() < 0.4
        if name in ("setitem", "setdefault"):
            ops.append((name, k, rnd.randrange(40), fresh))
        elif name in ("getitem", "get", "peek", "contains", "delitem", "pop", "pop-default",
                      "pop-keyword"):
            ops.append((name, k, fresh))
        elif name == "update-pairs":
            ops.append((name, [(rnd.randrange(nkeys), rnd.randrange(40)) for _ in range(3)]))
        elif name == "update-kwargs":
            ops.append((name, rnd.randrange(40)))
        elif name == "bulk":
            ops.append((name, rnd.randrange(50, 300)))
        elif name == "count":
            ops.append((name, rnd.choice([rnd.randrange(-1, 12), 10**30, 500, True, "3"])))
        elif name == "tick":
            ops.append((name, rnd.choice([0, 0.5, 1, 1, 2, 3, 5, 10, 40, -3])))
        elif name == "broken-timer":
            inner = rnd.choice(["setitem", "getitem", "get", "contains", "pop", "setdefault",
                                "len", "keys", "popitem"])
            if inner in ("setitem", "setdefault"):
                ops.append((name, inner, rnd.randrange(nkeys), rnd.randrange(40), False))
            elif inner in ("len", "keys", "popitem"):
                ops.append((name, inner))
            else:
                ops.append((name, inner, rnd.randrange(nkeys), False))
        elif name == "iter":
            ops.append((name, rnd.random() < 0.5))
        elif name == "next":
            ops.append((name, rnd.randrange(4)))
        else:
            ops.append((name,))
    return plan, ops


# setitem/get-like operations dominate, as in real use
OP_NAMES = (
    ["setitem"] * 8 + ["getitem"] * 4 + ["get"] * 3 + ["peek", "contains", "delitem", "pop",
    "pop-default", "setdefault", "setdefault"] + ["iter", "next", "next", "next"]
    + ["popitem", "update-pairs", "update-kwargs", "clear", "count", "count", "len", "keys",
       "values", "list", "reversed", "eq-dict", "eq-copy", "repr", "copy", "pickle",
       "copy-swap", "pickle-swap", "unhashable", "reinit", "pop-keyword", "bulk"]
    + ["tick"] * 6 + ["broken-timer"]
)


def run_seed(seed, c_module, py_module):
    """None if both engines agree on the whole sequence, else a description of the first
    disagreement."""
    plan, ops = draw_plan(seed)
    worlds = [World(f"{seed}-c", c_module, plan), World(f"{seed}-py", py_module, plan)]
    try:
        first = [(canon(w.lru), w.log) for w in worlds]
        if isinstance(worlds[0].lru, Exception) and first[0] == first[1]:
            return None  # both refused the constructor's arguments alike
        if first[0] != first[1]:
            return f"seed {seed}: construction: c={first[0]!r} python={first[1]!r}"
        for i, op in enumerate(ops):
            got = [w.step(op) for w in worlds]
            if got[0] != got[1]:
                return (f"seed {seed} step {i} {op!r}:\n  c      = {got[0]!r}\n"
                        f"  python = {got[1]!r}")
        return None
    finally:
        for w in worlds:
            WORLDS.pop(w.name, None)


def main(first, count):
    import fastlru._lru_c
    import fastlru._lru_py

    failures = 0
    for seed in range(first, first + count):
        problem = run_seed(seed, fastlru._lru_c, fastlru._lru_py)
        if problem is not None:
            print(problem)
            failures += 1
            if failures >= 3:
                break
    print(f"{count} seeds, {failures} disagreements")
    return 1 if failures else 0


@pytest.mark.c_extension
@pytest.mark.timeout(900)
def test_engines_agree_on_random_sequences():
    count = int(os.environ.get("FASTLRU_FUZZ_SEEDS", DEFAULT_SEEDS))
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-W", "error", __file__, "0", str(count)],
        capture_output=True, text=True, timeout=880,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.endswith(f"{count} seeds, 0 disagreements\n")


def test_the_fuzz_sees_a_disagreement():
    # The comparison can fail: an engine that answers differently is reported with its seed.
    import types

    import fastlru._lru_py

    class Reversed(fastlru._lru_py.LRU):
        def keys(self):
            return super().keys()[::-1]

    off = types.SimpleNamespace(LRU=Reversed)
    problems = [run_seed(seed, off, fastlru._lru_py) for seed in range(30)]
    assert any(p and " step " in p for p in problems)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
