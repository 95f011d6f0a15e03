"""Sphinx configuration: Markdown pages (myst-parser), the API reference from the docstrings
(autodoc) and every example executed (``sphinx-build -b doctest``). scripts/docs builds it with
``-W --keep-going -n``: any warning, unresolved reference or failing example fails the build."""
import importlib.util
import os
import re

import fastlru

project = "fastlru / ormcache"
author = "fastlru/ormcache authors"
copyright = "fastlru/ormcache authors"
release = version = fastlru.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.doctest"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

# the API reference documents what the code says; annotations stay in the signatures
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True}

# the examples of the pages and the docstrings are doctests; every page is one namespace
doctest_test_doctest_blocks = "default"

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = "fastlru / ormcache"


def _markdown_examples(text):
    """Every ```python block of the pages (and of README.md, CONTRIBUTING.md, CHANGELOG.md, which
    the site includes) is run by the doctest builder: the block becomes a ``testcode`` directive.
    The Markdown stays plain for GitHub; blocks that are not Python use another language tag."""
    return text.replace("\n```python\n", "\n```{testcode}\n")


# links between the files at the root and the pages, as GitHub and the site each resolve them
_ROOT_LINKS = {"(CONTRIBUTING.md)": "(contributing.md)", "(CHANGELOG.md)": "(changelog.md)",
               "(README.md)": "(readme.md)", "(docs/": "("}


def _source_read(app, docname, source):
    source[0] = _markdown_examples(source[0])


def _include_read(app, relative_path, parent_docname, content):
    text = _markdown_examples(content[0])
    for link, page in _ROOT_LINKS.items():
        text = text.replace(link, page)
    content[0] = text


def _docstring_examples(app, what, name, obj, options, lines):
    """The ``>>>`` examples of a docstring run as ``python -m doctest`` runs them: in a namespace
    of their own (a doctest group per documented object) holding the globals of the object's
    module, so that no docstring depends on another's leftovers."""
    if not any(line.lstrip().startswith(">>>") for line in lines):
        return
    module = name if what == "module" else getattr(obj, "__module__", None) or name.rpartition(".")[0]
    out = [f".. testsetup:: {name}", "",
           f"   import importlib; globals().update(vars(importlib.import_module({module!r})))", ""]
    block = False
    for line in lines:
        if not block and line.lstrip().startswith(">>>"):
            indent = line[:len(line) - len(line.lstrip())]
            out += [f"{indent}.. doctest:: {name}", ""]
            block = True
        elif block and not line.strip():
            block = False
        out.append(f"   {line}" if block else line)
    lines[:] = out


# The chart of the Performance page, drawn at each build (a second or two, nothing measured) by
# the function behind `python -m fastlru.bench --plot`, from the page's own table of the last
# idle CI run: the chart and the numbers beside it cannot disagree.
_CHART_TABLE = "## Ratios to `dict`, the last idle CI run"
_CONTENDERS = {"fastlru": "fastlru", "Cache[sieve]": "fastlru.Cache[sieve]",
               "Cache[wtinylfu]": "fastlru.Cache[wtinylfu]", "functools": "functools.lru_cache",
               "Odoo classic": "odoo-lru", "Odoo 18.3 (ours)": "odoo-lru-18.3"}
_WORKLOADS = {"get-hit int": "get-hit-int", "get-hit tuple": "get-hit-tuple", "Zipf": "zipf",
              "4 threads": "threads", "bytes/entry": "memory"}


def _chart_rows(markdown):
    """The bench's result rows (``impl``, ``workload``, ``ratio`` or ``bytes_per_entry``) of the
    table under ``_CHART_TABLE``."""
    section = markdown.split(_CHART_TABLE, 1)[1].lstrip("\n")
    section = section[section.index("\n|") + 1:]
    lines = []
    for line in section.splitlines():  # the first table of the section
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        workload = _WORKLOADS.get(cells[0], cells[0])
        ratios = [float(cell.split()[0]) for cell in cells[1:]]
        if workload == "memory":  # a ratio to dict's bytes: fastlru's cell also has its bytes
            dict_bytes = float(re.search(r"\(([\d.]+) B\)", cells[1]).group(1)) / ratios[0]
            rows.append({"impl": "dict", "workload": workload, "bytes_per_entry": dict_bytes})
            rows += [{"impl": _CONTENDERS.get(name, name), "workload": workload,
                      "bytes_per_entry": ratio * dict_bytes} for name, ratio in zip(header, ratios)]
        else:
            rows.append({"impl": "dict", "workload": workload, "ratio": 1.0})
            rows += [{"impl": _CONTENDERS.get(name, name), "workload": workload, "ratio": ratio}
                     for name, ratio in zip(header, ratios)]
    return rows


def _draw_chart(app):
    from fastlru.bench import plot

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "performance.md"), encoding="utf-8") as f:
        rows = _chart_rows(f.read())
    os.makedirs(os.path.join(here, "_generated"), exist_ok=True)
    plot.write(os.path.join(here, "_generated", "comparison.png"), rows,
               "fastlru.LRU vs peers: the last idle CI run (CPython 3.11, --quick)")


def setup(app):
    app.connect("builder-inited", _draw_chart)
    app.connect("autodoc-process-docstring", _docstring_examples)
    app.connect("source-read", _source_read)
    app.connect("include-read", _include_read)
