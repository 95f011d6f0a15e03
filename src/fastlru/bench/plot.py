"""The PNG bar chart: one panel per workload, ratio to dict (bytes/entry for memory); a legend
says what each colour is."""
from __future__ import annotations
import math
from typing import Any, Dict, Iterable, List, Mapping, Tuple

#: (colour, legend label) of each kind of contender, in legend order
KINDS: Dict[str, Tuple[str, str]] = {
    "ours": ("tab:green", "fastlru / ormcache (this package)"),
    "baseline": ("tab:gray", "baseline: dict, or the undecorated method"),
    "odoo": ("tab:red", "Odoo's code (what this replaces; 18.3+ LRU: our reconstruction)"),
    "peer": ("tab:blue", "other libraries"),
}


def kind_of(name: str) -> str:
    """Which of ``KINDS`` the contender called ``name`` is."""
    if name in ("dict", "undecorated"):
        return "baseline"
    if name in ("odoo-lru", "odoo-lru-18.3", "odoo classic ormcache"):
        return "odoo"
    if name.startswith(("fastlru", "ormcache")):
        return "ours"
    return "peer"


def legend(rows: Iterable[Mapping[str, Any]]) -> List[Tuple[str, str]]:
    """[(colour, label)] of the kinds of contender that ``rows`` show, in ``KINDS`` order."""
    shown = {kind_of(r["impl"]) for r in rows}
    return [entry for kind, entry in KINDS.items() if kind in shown]


def require_matplotlib() -> None:
    """Fail early, before minutes of measuring, if the chart cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib (or fastlru[bench])")


def write(path: str, rows: List[Dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    if not workloads:
        raise SystemExit("--plot: nothing was measured")
    cols = min(3, len(workloads))
    nrows = math.ceil(len(workloads) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 4 * nrows), squeeze=False)
    for ax, workload in zip(axes.flat, workloads):
        these = [r for r in rows if r["workload"] == workload]
        memory = workload == "memory"
        values: List[Any] = [r.get("bytes_per_entry") if memory else r.get("ratio") for r in these]
        values = [v if v is not None and not math.isnan(v) else 0.0 for v in values]
        names = [r["impl"] for r in these]
        colours = [KINDS[kind_of(n)][0] for n in names]
        ax.barh(names, values, color=colours)
        ax.invert_yaxis()
        ax.set_title(workload)
        if memory:
            ax.set_xlabel("bytes per entry (RSS)")
        else:
            ax.set_xlabel("ns/op relative to %s (lower is better)" % these[0].get("baseline", "dict"))
            if max(values, default=0) > 20:
                ax.set_xscale("log")
            ax.axvline(1.0, color="black", linewidth=0.8)
        for y, v in enumerate(values):
            ax.annotate("%.1f" % v if memory else "%.2fx" % v, (v, y), fontsize=7,
                        xytext=(3, 0), textcoords="offset points", va="center")
    for ax in list(axes.flat)[len(workloads):]:
        ax.set_visible(False)
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=label) for colour, label in legend(rows)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
