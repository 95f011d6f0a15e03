"""The C of the compiled modules lives in headers, not in Python strings (issue #21 item 1): no
``.pyx`` of the installed distribution holds a ``cdef extern from *`` block of verbatim C, and
every header a ``.pyx`` names ships beside it (the wheel and the sdist carry the ``.pyx``, so an
sdist build compiles from what it holds)."""
import importlib.metadata
import re

import pytest

EXTERN = re.compile(r'^cdef extern from (\*|"([^"]+)"):\s*\n(\s+""")?', re.M)


def _shipped_pyx():
    files = importlib.metadata.files("fastlru")
    return sorted((f for f in files if f.suffix == ".pyx"), key=str)


def test_the_compiled_sources_ship():
    names = {str(f).replace("\\", "/") for f in _shipped_pyx()}
    assert {"fastlru/_lru_c.pyx", "fastlru/_functools_c.pyx", "fastlru/_policy_c.pyx",
            "ormcache/_cache_c.pyx"} <= names, names


@pytest.mark.parametrize("pyx", _shipped_pyx(), ids=str)
def test_no_c_in_python_strings(pyx):
    verbatim = [m.group(0).strip() for m in EXTERN.finditer(pyx.read_text()) if m.group(3)]
    assert verbatim == [], f"{pyx}: C in a string; move it to a header beside the .pyx"


@pytest.mark.parametrize("pyx", _shipped_pyx(), ids=str)
def test_every_header_a_pyx_names_ships_beside_it(pyx):
    shipped = {str(f).replace("\\", "/") for f in importlib.metadata.files("fastlru")}
    folder = str(pyx).replace("\\", "/").rsplit("/", 1)[0]
    named = {m.group(2) for m in EXTERN.finditer(pyx.read_text()) if m.group(2) and m.group(2) != "Python.h"}
    missing = {name for name in named if f"{folder}/{name}" not in shipped}
    assert not missing, f"{pyx} names headers the distribution lacks: {sorted(missing)}"
    for name in named:  # and each one is a complete header
        text = (pyx.locate().parent / name).read_text()
        assert "#ifndef" in text and text.rstrip().endswith("#endif"), name
