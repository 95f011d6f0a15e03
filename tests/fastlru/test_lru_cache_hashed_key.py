"""``fastlru._functools_c._HashedKey`` (the compiled ``lru_cache``'s key of several arguments)
made from Python (issue #20): refused; one made by ``__new__`` alone (no items) compares by
identity, never reading its missing items as a tuple. In a subprocess: a bad read may crash."""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.c_extension

SCRIPT = textwrap.dedent("""
    from fastlru._functools_c import _HashedKey, make_key
    try:
        _HashedKey()
    except TypeError as exc:
        print("refused:", exc)
    empty, other = _HashedKey.__new__(_HashedKey), _HashedKey.__new__(_HashedKey)
    real = make_key((1, 2), {}, False)
    print(empty == empty, empty == other, empty == real, real == empty, real == make_key((1, 2), {}, False))
    print(hash(empty))
""")


def test_hashed_key_from_python():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "refused: cannot create 'fastlru._functools_c._HashedKey' instances",
        "True False False False True",
        "0",
    ]
