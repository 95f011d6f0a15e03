"""Helpers shared by the LRU test files."""
import contextlib
import sys


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
