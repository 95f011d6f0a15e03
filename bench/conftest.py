"""pytest-benchmark set-up for the LRU benchmarks (not part of the default test run).

Run: ``python -m pytest bench -q --benchmark-only`` (from the checkout, with ``src`` importable).
The comparison with the peer libraries and the targets is ``python -m fastlru.bench``.
"""
import importlib
import os
import sys

import pytest

try:
    import fastlru  # noqa: F401  (installed, or src already on the path)
except ImportError:  # a plain checkout: benchmark the sources next to this directory
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"))

# Same contenders as the comparison command, minus the peers. The compiled engine is imported
# directly: if it did not build, its benchmarks fail (never a silent skip), as in tests/.
IMPLEMENTATIONS = [
    pytest.param("dict", id="dict"),
    pytest.param("fastlru._lru_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._lru_py", id="pure-python"),
    pytest.param("fastlru.bench.odoo_lru", id="odoo-lru"),
]


def pytest_configure(config):
    # Timed loops run with the GC off, as in `python -m fastlru.bench`.
    config.option.benchmark_disable_gc = True


@pytest.fixture(params=IMPLEMENTATIONS, scope="module")
def make_cache(request):
    """``make_cache(capacity)``: a fresh, empty cache of one contender (dict ignores capacity)."""
    if request.param == "dict":
        return lambda capacity: {}
    return importlib.import_module(request.param).LRU
