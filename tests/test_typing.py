"""Types (issue #12): ``mypy --strict`` finds nothing in ``src/`` nor in a typed usage file, and
exactly the marked mistakes in another; pyright agrees on the usage files; the compiled modules
keep the names and signatures of the pure-Python twins that type checkers read.

The usage files are checked against the installed package, as a user's code is.
"""
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USAGE = ROOT / "tests" / "typing"
# a marked line: ``code  # E: <mypy error code>[, <code>...]``
MARK = re.compile(r"#\s*E:\s*([a-z][\w-]*(?:\s*,\s*[a-z][\w-]*)*)\s*$")
# mypy's line: ``path:line: error: message  [code]``
ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*?)(?:\s+\[(?P<code>[\w-]+)\])?$")


@pytest.fixture(scope="module")
def mypy(tmp_path_factory):
    """Runs ``mypy --strict`` with the project's configuration (one cache for the module)."""
    cache = tmp_path_factory.mktemp("mypy-cache")

    def run(*targets):
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
             "--cache-dir", str(cache), "--no-pretty", "--no-error-summary", *map(str, targets)],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )
        if proc.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
            pytest.fail(f"mypy failed to run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        errors = [m for m in map(ERROR.match, proc.stdout.splitlines()) if m]
        return proc, errors

    return run


def _listing(errors):
    return "\n".join(m.group(0) for m in errors)


def test_src_passes_mypy_strict(mypy):
    proc, errors = mypy(ROOT / "src")
    assert not errors and proc.returncode == 0, (
        f"mypy --strict src/ reports {len(errors)} error(s); annotate the code (a targeted "
        f"`# type: ignore[code]` only where a library is untyped):\n{_listing(errors)}\n{proc.stderr}"
    )


def test_typed_usage_passes_mypy_strict(mypy):
    proc, errors = mypy(USAGE / "usage_ok.py")
    assert not errors and proc.returncode == 0, (
        f"tests/typing/usage_ok.py: mypy --strict reports {len(errors)} error(s) in typed user "
        f"code:\n{_listing(errors)}\n{proc.stderr}"
    )


def _marks(path):
    """{line: {codes}} of the lines marked ``# E: code`` in ``path``."""
    marks = {}
    for number, text in enumerate(path.read_text().splitlines(), 1):
        match = MARK.search(text)
        if match:
            marks[number] = {code.strip() for code in match.group(1).split(",")}
    return marks


def test_mistakes_are_reported_by_mypy(mypy):
    path = USAGE / "usage_errors.py"
    expected = _marks(path)
    assert len(expected) >= 15  # the file must keep its mistakes
    _, errors = mypy(path)
    found = {}
    for m in errors:
        assert m.group("path").endswith("usage_errors.py"), f"an error outside the usage file:\n{m.group(0)}"
        found.setdefault(int(m.group("line")), set()).add(m.group("code"))
    missing = {line: codes - found.get(line, set()) for line, codes in expected.items()}
    missing = {line: codes for line, codes in missing.items() if codes}
    unexpected = {line: codes - expected.get(line, set()) for line, codes in found.items()}
    unexpected = {line: codes for line, codes in unexpected.items() if codes}
    assert not missing and not unexpected, (
        f"usage_errors.py: marked but not reported (line: codes): {missing}; reported but not "
        f"marked: {unexpected}\n{_listing(errors)}"
    )


def _pyright(tmp_path, path):
    """pyright (strict) on ``path`` against this interpreter's packages: {line: [messages]}."""
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({"typeCheckingMode": "strict"}))
    proc = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable, str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"pyright failed to run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    lines = {}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1
            lines.setdefault(line, []).append(f"{line}: {diagnostic['message']} ({diagnostic.get('rule')})")
    return lines


def test_typed_usage_passes_pyright_strict(tmp_path):
    errors = _pyright(tmp_path, USAGE / "usage_ok.py")
    assert not errors, "pyright --strict on usage_ok.py:\n" + "\n".join(
        message for messages in errors.values() for message in messages)


def test_mistakes_are_reported_by_pyright(tmp_path):
    path = USAGE / "usage_errors.py"
    errors = _pyright(tmp_path, path)
    expected = set(_marks(path))
    assert set(errors) == expected, (
        f"pyright: marked lines without an error {sorted(expected - set(errors))}, errors on "
        f"unmarked lines {sorted(set(errors) - expected)}:\n"
        + "\n".join(message for messages in errors.values() for message in messages)
    )


@pytest.mark.parametrize("no_extensions", ["", "1"], ids=["c-extension", "pure-python"])
def test_typed_usage_runs(tmp_path, no_extensions):
    """What usage_ok.py checks also works at run time (``LRU[str, int](42)``, the decorators)."""
    env = dict(os.environ, FASTLRU_NO_EXTENSIONS=no_extensions)
    proc = subprocess.run([sys.executable, str(USAGE / "usage_ok.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the compiled modules against the typed twins ----------------------------------------------

def _public(cls):
    return {name for name in dir(cls) if not name.startswith("_")}


def _parameters(function):
    """(name, kind, has a default) of each parameter: what a caller relies on."""
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(function).parameters.values()]


TWINS = [
    ("fastlru._lru_c", "fastlru._lru_py", "LRU"),
    ("fastlru._functools_c", "fastlru._functools_py", "LRUCacheWrapper"),
    ("ormcache._cache_c", "ormcache._cache_py", "Counter"),
]


@pytest.mark.parametrize("compiled_name, twin_name, class_name", TWINS, ids=[t[2] for t in TWINS])
def test_compiled_module_matches_its_typed_twin(compiled_name, twin_name, class_name):
    import importlib

    compiled, twin = importlib.import_module(compiled_name), importlib.import_module(twin_name)
    missing = [name for name in twin.__all__ if not hasattr(compiled, name)]
    assert not missing, f"{compiled_name} lacks {missing}, which type checkers see in {twin_name}"
    c_class, py_class = getattr(compiled, class_name), getattr(twin, class_name)
    assert _public(c_class) == _public(py_class), (
        f"{class_name}: only compiled {sorted(_public(c_class) - _public(py_class))}, "
        f"only typed {sorted(_public(py_class) - _public(c_class))}")
    for name in sorted(_public(py_class)):
        typed = inspect.getattr_static(py_class, name)
        built = inspect.getattr_static(c_class, name)
        assert inspect.isdatadescriptor(typed) == inspect.isdatadescriptor(built), name
        if callable(typed):
            assert _parameters(getattr(c_class, name)) == _parameters(getattr(py_class, name)), name


def test_compiled_lru_takes_the_typed_constructor_arguments():
    """The compiled ``LRU.__init__`` has no introspectable signature: it must accept every
    argument the typed twin declares, by the same name and kind."""
    from fastlru import _lru_c, _lru_py

    signature = inspect.signature(_lru_py.LRU.__init__)
    for param in list(signature.parameters.values())[2:]:  # after self and count
        value = [] if param.name == "pairs" else param.default
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            built, typed = _lru_c.LRU(2, **{param.name: value}), _lru_py.LRU(2, **{param.name: value})
        else:
            built, typed = _lru_c.LRU(2, value), _lru_py.LRU(2, value)
        assert repr(built) == repr(typed)
    with pytest.raises(TypeError):
        _lru_c.LRU(2, undeclared=1)
