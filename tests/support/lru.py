"""Helpers shared by the engine and lru_cache test files."""
import contextlib
import importlib
import subprocess
import sys
import textwrap

import pytest


@contextlib.contextmanager
def captured_unraisable():
    """Swap ``sys.unraisablehook`` for a recorder for the duration of the block."""
    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = old


def run_isolated(module, code, timeout=60):
    """Runs ``code`` in a fresh interpreter with ``LRU`` bound to ``module``'s class, so a crash
    or a hang fails one test, not the runner. Returns stdout; the script must end normally."""
    script = f"from {module.__name__} import LRU\n" + textwrap.dedent(code)
    try:
        proc = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-W", "error", "-c", script],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"hung for {timeout}s:\n{exc.stderr or ''}") from None
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# the two lru_cache implementations (fastlru._functools_c compiled, _functools_py its twin)
WRAPPERS = [
    pytest.param("fastlru._functools_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="pure-python"),
]


@pytest.fixture(params=WRAPPERS, scope="module", name="module")
def lru_cache_module(request):
    """The lru_cache module of one implementation (compiled or twin)."""
    return importlib.import_module(request.param)
