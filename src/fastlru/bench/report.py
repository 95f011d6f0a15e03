"""Text output: one table per workload, and (``--targets``) the goals the project holds itself to."""
from __future__ import annotations
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .impls import CACHE, DICT, FASTLRU, ODOO, cache_name

TIMED = ["get-hit-int", "get-hit-tuple", "set-evict", "zipf", "threads"]


def _num(x: Any, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt % x


def table(title: str, rows: List[Dict[str, Any]]) -> str:
    """A fixed-width table of rows (timed rows, memory rows or extra-section rows)."""
    memory = rows and rows[0]["workload"] == "memory"
    if memory:
        head = ("impl", "B/entry", "x dict", "tracemalloc", "note")
        cells = [(r["impl"], _num(r.get("bytes_per_entry"), "%.1f"), _num(r["ratio"], "%.2f"),
                  _num(r.get("tracemalloc_bytes_per_entry"), "%.1f"), r.get("note", ""))
                 for r in rows]
    else:
        head = ("impl", "ns/op", "median", "x %s" % (rows[0].get("baseline") or "?") if rows else "x",
                "note")
        cells = [(r["impl"], _num(r.get("ns"), "%.1f"), _num(r.get("ns_median"), "%.1f"),
                  _num(r.get("ratio"), "%.2f"), r.get("note", "")) for r in rows]
    widths = [max(len(str(c[i])) for c in [head] + cells) for i in range(len(head) - 1)]
    lines = [title]
    for c in [head] + cells:
        left = "  ".join(str(c[0]).ljust(widths[0]) if i == 0 else str(c[i]).rjust(widths[i])
                         for i in range(len(head) - 1))
        lines.append(("  " + left + "  " + str(c[-1])).rstrip())
    return "\n".join(lines)


def _by(rows: List[Dict[str, Any]], workload: str) -> Dict[str, Dict[str, Any]]:
    return {r["impl"]: r for r in rows if r["workload"] == workload}


def _ok(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def targets(rows: List[Dict[str, Any]]) -> List[Tuple[str, str, Optional[bool]]]:
    """[(target, measured, met)] for fastlru.LRU; met is None when it could not be measured."""
    out = []

    def ratio_target(workload: str, limit: float) -> None:
        r = _by(rows, workload).get(FASTLRU)
        if r is None:
            return
        ratio = r["ratio"]
        met = ratio <= limit if _ok(ratio) else None
        out.append(("%s <= %.1fx dict" % (workload, limit), _num(ratio, "%.2fx"), met))

    for workload in ("get-hit-int", "get-hit-tuple"):
        ratio_target(workload, 1.3)
        found = _by(rows, workload)
        ours = found.get(FASTLRU)
        peers = {n: r for n, r in found.items()
                 if n not in (DICT, FASTLRU) and not n.startswith(CACHE) and _ok(r["ns"])}
        if ours is not None and peers:
            best = min(peers.values(), key=lambda r: r["ns"])
            met = ours["ns"] < best["ns"] if _ok(ours["ns"]) else None
            out.append(("%s faster than every peer" % workload,
                        "%s vs best peer %s %s" % (_num(ours["ns"], "%.1f ns"), best["impl"],
                                                   _num(best["ns"], "%.1f ns")), met))
    ratio_target("set-evict", 1.2)
    ratio_target("zipf", 1.5)
    mem = _by(rows, "memory")
    if FASTLRU in mem and DICT in mem:
        ours, base = mem[FASTLRU]["bytes_per_entry"], mem[DICT]["bytes_per_entry"]
        met = ours <= base if _ok(ours) and _ok(base) else None
        out.append(("memory <= dict bytes/entry",
                    "%s vs %s B/entry" % (_num(ours, "%.1f"), _num(base, "%.1f")), met))
    for workload in TIMED:
        found = _by(rows, workload)
        if FASTLRU in found and ODOO in found:
            ours, odoo = found[FASTLRU]["ns"], found[ODOO]["ns"]
            speedup = odoo / ours if _ok(ours) and _ok(odoo) and ours > 0 else float("nan")
            out.append((">= 10x faster than %s on %s" % (ODOO, workload),
                        _num(speedup, "%.1fx"), speedup >= 10 if _ok(speedup) else None))
    out.extend(cache_targets(rows))
    return out


def cache_targets(rows: List[Dict[str, Any]]) -> List[Tuple[str, str, Optional[bool]]]:
    """fastlru.Cache with the recommended policy against fastlru.LRU, in the same run."""
    from .. import DEFAULT_POLICY

    out: List[Tuple[str, str, Optional[bool]]] = []
    name = cache_name(DEFAULT_POLICY)
    for workload, limit, field in (("get-hit-int", 1.1, "ns"), ("get-hit-tuple", 1.1, "ns"),
                                   ("set-evict", 1.3, "ns"), ("memory", 1.2, "bytes_per_entry")):
        found = _by(rows, workload)
        if name in found and FASTLRU in found:
            ours, lru = found[name].get(field), found[FASTLRU].get(field)
            ratio = (float(ours) / float(lru) if ours is not None and lru is not None
                     and _ok(ours) and _ok(lru) and lru > 0 else float("nan"))
            out.append(("%s %s <= %.1fx LRU's" % (name, workload, limit), _num(ratio, "%.2fx"),
                        ratio <= limit if _ok(ratio) else None))
    return out


def section_targets(rows: Iterable[Mapping[str, Any]]) -> List[Tuple[Any, ...]]:
    """[(target, measured, met)] that extra sections' rows carry (their ``targets``)."""
    return [tuple(t) for r in rows for t in r.get("targets", [])]


def targets_text(found: List[Tuple[str, str, Optional[bool]]], implementation: str) -> str:
    lines = ["Targets (the project's own goals; fastlru.LRU: %s):" % implementation]
    width = max((len(t) for t, _, _ in found), default=0)
    for target, measured, met in found:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[met]
        lines.append("  %-6s  %s  %s" % (verdict, target.ljust(width), measured))
    if not found:
        lines.append("  (no workload measured that a target applies to)")
    return "\n".join(lines)
