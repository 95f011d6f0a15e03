"""Fixtures of the ormcache suites (tests/ormcache/ and its signaling/ and sqlalchemy/ folders).

``hit_path`` runs a test once on the compiled hit path and once on the pure-Python one;
``registry`` is a fresh Registry on the engine of ``LRU`` (tests/conftest.py) and that hit path;
``clean_default`` leaves ``default_registry`` as the test found it; ``IMD`` is Odoo's
``ir.model.data`` as Odoo's own cache tests use it.
"""
import importlib
import itertools

import pytest

HIT_PATHS = [
    pytest.param("ormcache._cache_c", id="c-hit", marks=pytest.mark.c_extension),
    pytest.param("ormcache._cache_py", id="py-hit"),
]
_registry_names = itertools.count()


@pytest.fixture(params=HIT_PATHS)
def hit_path(request, monkeypatch):
    """Decorations made during the test use this ormcache hit path (imported directly: a
    compiled one that did not build fails, never skips)."""
    from ormcache import decorators

    module = importlib.import_module(request.param)
    monkeypatch.setattr(decorators, "_impl", module)
    return module


@pytest.fixture
def registry(LRU, hit_path):
    """A fresh ormcache Registry on one fastlru implementation, deleted afterwards."""
    from ormcache import Registry

    name = f"test-registry-{next(_registry_names)}"
    reg = Registry(name, lru_factory=LRU)
    assert isinstance(reg.caches["default"], LRU)
    yield reg
    Registry.delete(name)


@pytest.fixture
def clean_default():
    """Tests using default_registry leave it as they found it."""
    from ormcache import default_registry

    default_registry.clear_all_caches()
    default_registry.cache_invalidated.clear()
    yield default_registry
    default_registry.clear_all_caches()
    default_registry.cache_invalidated.clear()


@pytest.fixture
def IMD(registry):
    """An ``ir.model.data`` record on ``registry``: ``_xmlid_lookup(xmlid)`` (``@ormcache("xmlid")``,
    the method Odoo's ``test_ormcache`` counts) and ``unhashable(xmlid)`` (the same key, returns it)."""
    from ormcache import ormcache

    class IrModelData:
        __slots__ = ("env",)
        _name = "ir.model.data"
        pool = registry

        @ormcache("xmlid")
        def _xmlid_lookup(self, xmlid):
            return ("res.groups", 42, True)

        @ormcache("xmlid")
        def unhashable(self, xmlid):
            return xmlid

    return IrModelData()
