"""The ormcache section on Odoo's own shapes (issue 19), in ``python -m fastlru.bench``.

Two tables, every row of both timed in one interleaved run (``fastlru.bench.timing``), the
empty loop of each table timed in the same run and subtracted, minimum from minimum and
median from median (as ``ormcache._bench``, whose tables keep the older shapes):

- ``ormcache-hit-odoo``: ``record.get_param(key)`` (64 keys, all cached) on a record built like
  Odoo's ``BaseModel``: ``__slots__ = ('env', '_ids', '_prefetch_ids')``, ``pool`` and
  ``_name`` on the class, ``env`` an instance attribute (an ``Environment``-like object with
  ``uid`` and ``context``), ``context`` a ``frozendict`` (a ``dict`` subclass, as Odoo's) or a
  plain dict. Rows: the undecorated method; ``@ormcache('key')``;
  ``@ormcache_context('key', keys=('lang',))`` with each context; ``@ormcache`` with the key
  expressions of Odoo code (``'self.id'``, a property on the record; ``'self.env.uid'``;
  ``'frozenset(ids)'``) beside ``'key'``, each next to the undecorated method that evaluates the
  same bare expression before its body (the expression's own cost, in the same run).
- ``ormcache-models``: a method defined once on a mixin, called round-robin over 1, 8 and 64
  models (classes of their own, Odoo's shape), 512 calls a pass over 64 (model, key) entries
  whatever the number of models: the cost of finding each model's slot, on both hit paths, and
  the undecorated method over the same models. The call site itself costs more over many
  models (CPython's per-instruction method cache holds one type: each call on a new type looks
  the method up again); measured on the undecorated method, that share is shown apart.

Targets (issue 19; ``python -m fastlru.bench --targets``): ``@ormcache_context`` at most 1.3x the
``@ormcache`` hit on this shape, with either context; an expression key at most the
``@ormcache`` hit plus the bare expression's cost; 64 models round robin at most 1.2x one model
on the compiled hit path, 1.5x on the twin.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._bench import KEYS, PARAMS, _with_impl

__all__ = ["rows", "measure", "odoo_contenders", "model_contenders", "BaseModel", "frozendict", "Environment"]

ODOO = "ormcache-hit-odoo"
MODELS = "ormcache-models"
EMPTY = "empty loop"
UNDECORATED = "undecorated"
MODEL_COUNTS = (1, 8, 64)
PAIRS = 512  # calls per pass of the models table
IDS = (7, 11, 13)  # ``frozenset(ids)``'s argument (a default, as a real call would pass it)


class frozendict(Dict[Any, Any]):  # noqa: N801 - Odoo's name
    """Odoo's ``odoo.tools.frozendict``: a dict subclass whose mutators raise."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("'__setitem__' not supported on frozendict")

    __delitem__ = __setitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


class Environment:
    """What a record's ``env`` is to a key: an object with ``uid`` and ``context`` attributes."""

    def __init__(self, uid: int, context: Any) -> None:
        self.uid = uid
        self.context = context


class BaseModel:
    """Odoo's record shape: ``env``, ``_ids`` and ``_prefetch_ids`` slots; ``pool`` and
    ``_name`` are class attributes of each model; ``id`` a property."""

    __slots__ = ("env", "_ids", "_prefetch_ids")

    def __init__(self, env: Any, ids: Tuple[int, ...]) -> None:
        self.env = env
        self._ids = ids
        self._prefetch_ids = ids

    @property
    def id(self) -> Any:
        return self._ids[0] if self._ids else False


def _record(registry: Any, name: str, method: Callable[..., Any], context: Any = None) -> Any:
    """A one-record recordset of a model class of its own whose ``get_param`` is ``method``."""
    cls = type(name.replace(".", "_"), (BaseModel,), {"__slots__": (), "_name": name, "pool": registry,
                                                      "get_param": method})
    return cls(Environment(2, frozendict({"lang": "fr_FR", "tz": "Europe/Brussels"}) if context is None else context), (42,))


def _methods() -> Dict[str, Tuple[Callable[..., Any], Callable[..., Any], str]]:
    """expression label -> (the bare method, the undecorated method evaluating the expression
    first, the expression): the methods the expression rows decorate."""
    params = PARAMS

    def with_id(self, key):  # type: ignore[no-untyped-def]
        self.id
        return params[key]

    def with_uid(self, key):  # type: ignore[no-untyped-def]
        self.env.uid
        return params[key]

    def with_ids(self, key, ids=IDS):  # type: ignore[no-untyped-def]
        frozenset(ids)
        return params[key]

    def plain_with_ids(self, key, ids=IDS):  # type: ignore[no-untyped-def]
        return params[key]

    def plain(self, key):  # type: ignore[no-untyped-def]
        return params[key]

    return {
        "'self.id'": (plain, with_id, "self.id"),
        "'self.env.uid'": (plain, with_uid, "self.env.uid"),
        "'frozenset(ids)'": (plain_with_ids, with_ids, "frozenset(ids)"),
    }


def _plain() -> Callable[[Any, str], str]:
    params = PARAMS

    def get_param(self, key):  # type: ignore[no-untyped-def]
        return params[key]

    return get_param


def odoo_contenders() -> Dict[str, Any]:
    """{name -> record whose ``get_param(key)`` is timed}: the ``ormcache-hit-odoo`` table."""
    from .decorators import IMPLEMENTATION, ormcache, ormcache_context
    from .registry import Registry

    registry = Registry("ormcache-bench-odoo")
    ours = f"ormcache ({IMPLEMENTATION})"
    found = {
        UNDECORATED: _record(registry, "ir.config_parameter", _plain()),
        ours: _record(registry, "ir.config_parameter.hit", ormcache("key")(_plain())),
        f"ormcache_context ({IMPLEMENTATION}), frozendict context": _record(
            registry, "ir.config_parameter.ctx", ormcache_context("key", keys=("lang",))(_plain())),
        f"ormcache_context ({IMPLEMENTATION}), dict context": _record(
            registry, "ir.config_parameter.ctxdict", ormcache_context("key", keys=("lang",))(_plain()),
            context={"lang": "fr_FR", "tz": "Europe/Brussels"}),
    }
    for label, (plain, bare, expression) in _methods().items():
        found[f"undecorated, evaluating {label}"] = _record(registry, f"ir.bare.{expression}", bare)
        found[f"ormcache ({IMPLEMENTATION}) 'key', {label}"] = _record(
            registry, f"ir.expr.{expression}", ormcache("key", expression)(plain))
    for obj in found.values():
        for key in KEYS:
            obj.get_param(key)
    return found


def model_contenders() -> Dict[str, List[Tuple[Any, str]]]:
    """{name -> the (record, key) pairs of one pass}: the ``ormcache-models`` table."""
    from . import _cache_py, decorators
    from .decorators import ormcache
    from .registry import Registry

    registry = Registry("ormcache-bench-models")
    found: Dict[str, List[Tuple[Any, str]]] = {}
    compiled: Any = getattr(decorators, "_impl")  # the hit path in use (not exported to type checkers)
    for impl, label in ((None, UNDECORATED), (compiled, f"ormcache ({decorators.IMPLEMENTATION})"),
                        (_cache_py, "ormcache (python twin)")):
        method = _plain() if impl is None else _with_impl(decorators, impl, lambda: ormcache("key")(_plain()))
        mixin = type("Mixin", (BaseModel,), {"__slots__": (), "get_param": method})
        env = Environment(2, frozendict({"lang": "fr_FR"}))
        records = [type(f"Model{i}", (mixin,), {"__slots__": (), "_name": f"bench.model.{label}.{i}",
                                                "pool": registry})(env, (1,)) for i in range(max(MODEL_COUNTS))]
        for count in MODEL_COUNTS:
            # 64 (model, key) entries in every row: only the number of models differs
            pairs = [(records[i % count], KEYS[i % len(KEYS)]) for i in range(PAIRS)]
            for record, key in pairs:
                record.get_param(key)
            found[f"{label}, {count} model{'s' if count > 1 else ''}"] = pairs
    return found


# The timed loops: the same function for every contender of a table, and the same loop without
# the call, timed in the same interleaving, subtracted from each.

def calls(obj: Any, keys: List[Any], rounds: int) -> None:
    for _ in range(rounds):
        for key in keys:
            obj.get_param(key)


def no_calls(obj: Any, keys: List[Any], rounds: int) -> None:
    for _ in range(rounds):
        for key in keys:
            pass


def pair_calls(pairs: List[Tuple[Any, str]], rounds: int) -> None:
    for _ in range(rounds):
        for record, key in pairs:
            record.get_param(key)


def no_pair_calls(pairs: List[Tuple[Any, str]], rounds: int) -> None:
    for _ in range(rounds):
        for record, key in pairs:
            pass


def _prepare(loop: Callable[..., None], *args: Any) -> Callable[[], None]:
    return functools.partial(loop, *args)


def measure(quick: bool, repeats: Optional[int] = None) -> Dict[str, Dict[str, Tuple[float, float]]]:
    """table -> {name -> (min, median) ns per call, the table's empty loop subtracted}."""
    from fastlru.bench.timing import interleaved

    rounds = 100 if quick else 400
    model_rounds = max(1, rounds * len(KEYS) // PAIRS)
    cases: Dict[Tuple[str, str], Any] = {}
    for name, obj in odoo_contenders().items():
        cases[(ODOO, name)] = functools.partial(_prepare, calls, obj, list(KEYS), rounds)
    cases[(ODOO, EMPTY)] = functools.partial(_prepare, no_calls, None, list(KEYS), rounds)
    contenders = model_contenders()
    for name, pairs in contenders.items():
        cases[(MODELS, name)] = functools.partial(_prepare, pair_calls, pairs, model_rounds)
    cases[(MODELS, EMPTY)] = functools.partial(_prepare, no_pair_calls, next(iter(contenders.values())), model_rounds)
    samples = interleaved(cases, repeats or (9 if quick else 31), warmup=2)
    for (table, name), got in samples.items():
        if got.error:
            raise RuntimeError(f"{table} {name}: {got.error}")
    result: Dict[str, Dict[str, Tuple[float, float]]] = {}
    for table, n in ((ODOO, rounds * len(KEYS)), (MODELS, model_rounds * PAIRS)):
        loop = samples[(table, EMPTY)]
        result[table] = {EMPTY: (loop.min() / n, loop.median() / n)}
        for (where, name), got in samples.items():
            if where == table and name != EMPTY:
                result[table][name] = ((got.min() - loop.min()) / n, (got.median() - loop.median()) / n)
    return result


def _row(table: str, name: str, ns: Tuple[float, float], baseline: str, base: float, note: str,
         targets: List[Tuple[str, str, bool]]) -> Dict[str, Any]:
    return {"workload": table, "impl": name, "ns": round(ns[0], 1), "ns_median": round(ns[1], 1),
            "baseline": baseline, "ratio": round(ns[0] / base, 3), "note": note, "targets": targets}


def rows(quick: bool, repeats: Optional[int] = None) -> List[Dict[str, Any]]:
    """The section's rows: ``ormcache-hit-odoo`` (ratios to the undecorated method) and
    ``ormcache-models`` (ratios to one model on the same hit path)."""
    from .decorators import IMPLEMENTATION

    ns = measure(quick, repeats)
    out = []
    found = ns[ODOO]
    loop = found.pop(EMPTY)
    ours = f"ormcache ({IMPLEMENTATION})"
    base, hit = found[UNDECORATED][0], found[ours][0]
    bare = {label: found[f"undecorated, evaluating {label}"][0] - base for label in _methods()}
    for name, got in found.items():
        note, targets = "", []
        if name == UNDECORATED:
            note = (f"Odoo's record shape (slots env/_ids/_prefetch_ids, pool/_name on the class); body: return "
                    f"params[key]; loop {loop[0]:.1f} ns (median {loop[1]:.1f}) subtracted from every row")
        elif name == ours:
            note = f"{hit / base:.2f}x undecorated"
        elif name.startswith("ormcache_context"):
            note = f"{got[0] / hit:.2f}x the ormcache hit; key 'key' + context lang"
            targets = [(f"{ODOO}: {name} <= 1.3x the ormcache hit", f"{got[0] / hit:.2f}x", got[0] <= 1.3 * hit)]
        elif name.startswith("undecorated, evaluating"):
            note = f"the bare expression costs {got[0] - base:.1f} ns"
        else:
            label = name.rpartition(", ")[2]
            extra = got[0] - hit
            note = f"{extra:.1f} ns over the ormcache hit; the bare expression {bare[label]:.1f} ns"
            targets = [(f"{ODOO}: {name} <= the ormcache hit + the bare expression",
                        f"+{extra:.1f} ns vs +{bare[label]:.1f} ns", extra <= max(bare[label], 0.0))]
        out.append(_row(ODOO, name, got, UNDECORATED, base, note, targets))
    found = ns[MODELS]
    loop = found.pop(EMPTY)
    many = f"{max(MODEL_COUNTS)} models"
    # what the call site itself costs more over many models (the interpreter's method cache
    # misses on a new type every call), measured on the undecorated method
    call_site = found[f"{UNDECORATED}, {many}"][0] - found[f"{UNDECORATED}, 1 model"][0]
    for name, got in found.items():
        label, _, count = name.rpartition(", ")
        one = found[f"{label}, 1 model"][0]
        if count == "1 model":
            note = (f"a mixin's method over 1 model; {PAIRS} calls a pass over 64 (model, key) entries whatever "
                    f"the number of models; loop {loop[0]:.1f} ns (median {loop[1]:.1f}) subtracted")
        else:
            note = f"{got[0] / one:.2f}x one model"
            if count == many:
                note += f"; the call site's own share (undecorated, {many} - 1 model): {call_site:.1f} ns"
        targets = []
        if count == many and label != UNDECORATED:
            bound = 1.5 if "twin" in label else 1.2
            targets = [
                (f"{MODELS}: {name} <= {bound}x one model", f"{got[0] / one:.2f}x", got[0] <= bound * one),
                (f"{MODELS}: {name} less the call site's share <= {bound}x one model",
                 f"{(got[0] - call_site) / one:.2f}x", got[0] - call_site <= bound * one),
            ]
        out.append(_row(MODELS, name, got, f"{label}, 1 model", one, note, targets))
    return out


if __name__ == "__main__":
    from fastlru.bench.report import table

    got = rows(quick=True)
    for workload in (ODOO, MODELS):
        print(table(workload, [r for r in got if r["workload"] == workload]))
