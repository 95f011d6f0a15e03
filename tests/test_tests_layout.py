"""The suite's own layout (issue #21, item 1; tests/README.md): no test module imports another
test module (shared helpers live in tests/support/), and test file names stay unique across the
folders (pytest imports them by basename)."""
import ast
import collections
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _test_modules():
    return sorted(path for path in TESTS.rglob("test_*.py") if "support" not in path.relative_to(TESTS).parts)


def imported_names(path):
    """The top-level names of every module ``path`` imports (absolute imports, any depth)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_no_test_module_imports_another():
    # every module of tests/ but the support package and the conftests
    local = {path.stem for path in TESTS.rglob("*.py")
             if "support" not in path.relative_to(TESTS).parts and path.name != "conftest.py"}
    offenders = [f"{path.relative_to(TESTS)} imports {name}"
                 for path in _test_modules() for name in imported_names(path) if name in local]
    assert not offenders, "import shared helpers from tests/support/ instead:\n" + "\n".join(offenders)


def test_test_file_names_are_unique_across_folders():
    by_name = collections.defaultdict(list)
    for path in _test_modules():
        by_name[path.name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}
