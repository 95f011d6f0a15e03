"""Sections added by other layers: each module of the ``fastlru.bench`` entry points that imports provides
``rows(quick: bool) -> list[dict]`` with ``workload``, ``impl``, ``ns``, ``baseline``, ``ratio``
and ``note``, and optionally ``targets``: ``[(target, measured, met)]``, the section's own goals
(printed with ``--targets`` only). A missing module is skipped silently; a failing one is
reported, never fatal."""
from __future__ import annotations
import importlib
import traceback
from typing import Any, Callable, Dict, Iterable, List, Tuple, Union

REQUIRED_KEYS: Dict[str, Union[type, Tuple[type, ...]]] = {"workload": str, "impl": str, "ns": (int, float), "baseline": str,
                 "ratio": (int, float), "note": str}


def _missing(exc: ModuleNotFoundError, name: str) -> bool:
    # Only the section module itself (or its package) being absent counts as "not installed";
    # a section that exists but fails on one of its own imports is reported.
    return exc.name is not None and (name == exc.name or name.startswith(exc.name + "."))


def _check_row(row: Any) -> str:
    if not isinstance(row, dict):
        return "row is %s, not a dict" % type(row).__name__
    for key, kind in REQUIRED_KEYS.items():
        if key not in row:
            return "row lacks %r" % key
        if not isinstance(row[key], kind) or isinstance(row[key], bool):
            return "row[%r] is %r" % (key, row[key])
    targets = row.get("targets", [])
    if not isinstance(targets, list) or not all(
            isinstance(t, (list, tuple)) and len(t) == 3 and isinstance(t[0], str) for t in targets):
        return "row['targets'] is %r, not a list of (target, measured, met)" % (targets,)
    return ""


def collect(modules: Iterable[str], quick: bool, tick: Callable[[str], None] = lambda s: None,
            ) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(rows, errors): rows tagged with ``section``; errors as ``"module: message"`` strings."""
    rows, errors = [], []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if _missing(exc, name):
                continue
            errors.append("%s: import failed: %s" % (name, exc))
            continue
        except Exception as exc:
            errors.append("%s: import failed: %s: %s" % (name, type(exc).__name__, exc))
            continue
        tick(name)
        try:
            got = list(module.rows(quick))
        except Exception as exc:
            traceback.print_exc()
            errors.append("%s: rows() raised %s: %s" % (name, type(exc).__name__, exc))
            continue
        for row in got:
            problem = _check_row(row)
            if problem:
                errors.append("%s: bad row skipped: %s" % (name, problem))
                continue
            rows.append(dict(row, section=name))
    return rows, errors
