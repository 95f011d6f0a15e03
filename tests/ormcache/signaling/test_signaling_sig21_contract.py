"""The signaling contract (issue #21 item 1): every hook a backend may provide is listed in
``ormcache.signaling.contract``; the registry and the SQLAlchemy layer reach a backend only
through it, and no layer calls another's private names."""
import ast
import threading
from pathlib import Path

import pytest

import ormcache
from ormcache.signaling import LocalSignaling, RedisSignaling, SignalingBackend, contract
from support.registries import fresh_registries

SRC = Path(ormcache.__file__).resolve().parent
OPTIONAL_HOOKS = {"attach", "timeout", "gc", "record_statement", "arecord_statement", "record_in_transaction"}


class DuckBackend:
    """A backend that is no SignalingBackend: the required methods only, counters in a dict."""

    def __init__(self):
        self.counters = {}

    def read_versions(self, db_name, names):
        return None, tuple(self.counters.get(name, 0) for name in names)

    def bump(self, db_name, names):
        for name in names:
            self.counters[name] = self.counters.get(name, 0) + 1

    async def aread_versions(self, db_name, names):
        return self.read_versions(db_name, names)

    async def abump(self, db_name, names):
        self.bump(db_name, names)

    def close(self):
        pass

    async def aclose(self):
        pass


class HookedBackend(DuckBackend):
    """Every optional hook, each call noted."""

    timeout = 0.25
    record_in_transaction = True

    def __init__(self):
        super().__init__()
        self.calls = []

    def attach(self, registry):
        self.calls.append(("attach", registry.db_name))

    def gc(self, names, *, keep, older_than):
        self.calls.append(("gc", keep, older_than))
        return 3

    def record_statement(self, db_name, names):
        self.calls.append(("record", list(names)))
        return f"-- record {','.join(names)}"

    async def arecord_statement(self, db_name, names):
        return self.record_statement(db_name, names)


@pytest.fixture
def new_registry():
    with fresh_registries("sig21-contract") as new:
        yield new


def test_every_backend_class_provides_the_required_methods():
    for backend in (LocalSignaling(), DuckBackend(), HookedBackend()):
        assert isinstance(backend, contract.Backend)
    assert not isinstance(object(), contract.Backend)
    for cls in (SignalingBackend, RedisSignaling):
        assert all(callable(getattr(cls, name, None)) for name in
                   ("read_versions", "bump", "aread_versions", "abump", "close", "aclose"))


def test_optional_hooks_absent():
    backend = DuckBackend()
    assert contract.attach_hook(backend) is None
    assert contract.gc_hook(backend) is None
    assert contract.record_hooks(backend) is None
    assert not contract.records_in_transaction(backend)
    assert not contract.says_record_in_transaction(backend)
    assert contract.timeout_of(backend) == contract.DEFAULT_TIMEOUT == 0.5
    assert contract.records_in_transaction(None) is False


def test_optional_hooks_present():
    backend = HookedBackend()
    assert contract.attach_hook(backend) == backend.attach
    assert contract.gc_hook(backend) == backend.gc
    assert contract.record_hooks(backend) == (backend.record_statement, backend.arecord_statement)
    assert contract.records_in_transaction(backend)
    assert contract.timeout_of(backend) == 0.25
    backend.record_in_transaction = False  # asked not to: no hook, whatever it has
    assert contract.record_hooks(backend) is None


def test_a_registry_uses_a_duck_backend_and_its_hooks(new_registry):
    writer, reader = new_registry(), new_registry()
    backend = HookedBackend()
    writer.signaling = reader.signaling = backend
    # one counter set: the second registry reads the first one's under its own name
    reader_name, writer_name = reader.db_name, writer.db_name
    assert writer.check_signaling() == [] and reader.check_signaling() == []
    assert ("attach", writer_name) in backend.calls and ("attach", reader_name) in backend.calls
    assert writer.gc_signaling(keep=2, older_than=5.0) == 3
    assert ("gc", 2, 5.0) in backend.calls
    statements = []
    assert writer.record_changes({"default"}, statements.append) is True
    assert statements == ["-- record default"]
    with writer.cursor_scope():
        writer.clear_cache("default")
    assert backend.counters.get("default") == 1


def test_a_backend_without_optional_hooks_serves_a_registry(new_registry):
    registry = new_registry()
    registry.signaling = DuckBackend()
    assert registry.check_signaling() == []
    assert registry.gc_signaling() == 0
    assert registry.record_changes({"default"}, print) is False
    with registry.cursor_scope():
        registry.clear_cache("default")
    assert registry.signaling.counters == {"default": 1}


def test_signaling_notified_is_public(new_registry):
    registry = new_registry()
    assert "signaling_notified" in contract.Notified.__dict__
    registry.signaling_notified(["default"])  # clears that name's caches, raises nothing
    registry.signaling_notified(["registry"])


def test_the_redis_listener_calls_the_public_method(new_registry, redis_server, redis_prefix):
    """A registry that replaces ``signaling_notified`` (an instance or a subclass) is called by
    the pub/sub listener: the listener uses the contract, not a private name."""
    first, idle = new_registry(), new_registry()
    first.signaling = RedisSignaling(redis_server.url, key_prefix=redis_prefix, pubsub=True)
    idle.signaling = RedisSignaling(redis_server.url, key_prefix=redis_prefix, pubsub=True)
    heard, names_heard = threading.Event(), []

    def notified(names):
        names_heard.append(list(names))
        heard.set()

    idle.signaling_notified = notified
    first.check_signaling()
    idle.check_signaling()
    assert idle.signaling._listener.ready.wait(30)
    with first.cursor_scope():
        first.clear_cache("assets")
    assert heard.wait(30), "the listener did not call registry.signaling_notified()"
    assert names_heard[0] == ["assets"]


# -- the layering, read from the installed sources --------------------------------------------

def _sources(*packages):
    for package in packages:
        yield from sorted((SRC / package).glob("*.py"))


def _module_of(path):
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")


#: private modules every layer of ormcache may use: the package's lazy logger (issue #21: import
#: cost, ``logging`` loaded when a line is logged)
#: private modules shared on purpose: the logger, and asyncio's one single flight (issue #21: one
#: home per concept, which lru_cache on ``async def``, the async ``@ormcache`` and the SQLAlchemy
#: bridge use), by these names only
SHARED_PRIVATE = {"ormcache._logger", "ormcache._logger.get_logger",
                  "fastlru._aio", "fastlru._aio.AsyncFlights", "fastlru._aio.Flight"}


def _ours(full):
    return full.split(".")[0] in ("ormcache", "fastlru")


def test_no_private_module_of_another_layer_is_imported():
    """``ormcache.signaling`` and ``ormcache.sqlalchemy`` import no ``_private`` module of
    another package of ours (their own ``_x`` modules are theirs; the standard library's
    ``_thread`` and ``_collections_abc`` are not ours)."""
    offenders = []
    for path in _sources("signaling", "sqlalchemy"):
        module = _module_of(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # the module imported from, and each name imported (a module or a member)
                for full in [source] + [f"{source}.{alias.name}" for alias in node.names]:
                    parts = full.split(".")
                    owner = ".".join(parts[:-1])
                    if (parts[-1].startswith("_") and not parts[-1].startswith("__") and _ours(full)
                            and full not in SHARED_PRIVATE and not (owner + ".").startswith(package + ".")):
                        offenders.append(f"{path.name}:{node.lineno} imports {full}")
            elif isinstance(node, ast.Import):
                offenders.extend(f"{path.name}:{node.lineno} imports {alias.name}" for alias in node.names
                                 if _ours(alias.name) and any(part.startswith("_") for part in alias.name.split(".")))
    assert offenders == []


def test_the_registry_calls_no_private_method_of_a_backend_and_backends_none_of_the_registry():
    offenders = []
    for path in _sources("signaling", "sqlalchemy"):
        text = path.read_text()
        if "._signaling_notified" in text:
            offenders.append(f"{path.name}: _signaling_notified")
    assert offenders == []


def test_optional_hooks_are_looked_up_only_by_the_contract():
    """Outside ``contract.py`` no module of ``ormcache`` reads a backend hook by name
    (``getattr(x, "gc")``, ``hasattr(x, "record_statement")``...)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "contract.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in OPTIONAL_HOOKS):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    assert offenders == []
