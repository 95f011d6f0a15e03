"""Fixtures of the policy engine's tests (``fastlru.Cache``, issue #22): each test of
``test_policy_*.py`` that asks for them runs on both implementations (the compiled engine, which
must have built, and its pure-Python twin) and, with ``policy`` or ``make``, every policy.
``make_any`` covers both types at once, ``LRU`` and ``Cache``, for the suites they share
(``test_ttl.py``, ``test_weights.py``, ``test_pickle.py``)."""
import importlib

import pytest

import fastlru

CACHE_IMPLEMENTATIONS = [
    pytest.param("fastlru._policy_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._policy_py", id="pure-python"),
]


@pytest.fixture(params=CACHE_IMPLEMENTATIONS, scope="module")
def policy_module(request):
    """``fastlru._policy_c`` or ``fastlru._policy_py``."""
    return importlib.import_module(request.param)


@pytest.fixture(params=list(fastlru.POLICIES))
def policy(request):
    """Every name of ``fastlru.POLICIES``."""
    return request.param


@pytest.fixture
def make(policy_module, policy):
    """make(count, ...) -> a Cache of this implementation and policy."""
    def make(count, *args, **kwargs):
        return policy_module.Cache(count, *args, policy=policy, **kwargs)
    return make


# Both cache types behind one factory, for suites that hold of LRU and Cache alike (issue #21):
# LRU on each engine, then Cache with every policy on each engine.
ANY_CACHE = [
    pytest.param(("fastlru._lru_c", "LRU", None), id="LRU-c-extension",
                 marks=pytest.mark.c_extension),
    pytest.param(("fastlru._lru_py", "LRU", None), id="LRU-pure-python"),
    *[pytest.param(("fastlru._policy_c", "Cache", name), id=f"Cache-{name}-c-extension",
                   marks=pytest.mark.c_extension) for name in fastlru.POLICIES],
    *[pytest.param(("fastlru._policy_py", "Cache", name), id=f"Cache-{name}-pure-python")
      for name in fastlru.POLICIES],
]


@pytest.fixture(params=ANY_CACHE)
def make_any(request):
    """make_any(count, ...) -> an ``LRU`` or a ``Cache`` (one policy) of one implementation.

    ``make_any.kind`` is ``"LRU"`` or ``"Cache"``, ``make_any.policy`` the policy (``None`` for
    ``LRU``), ``make_any.repr_args`` what the type's repr shows before ``ttl=``."""
    module_name, kind, policy = request.param
    cls = getattr(importlib.import_module(module_name), kind)
    if policy is None:
        def make_any(count, *args, **kwargs):
            return cls(count, *args, **kwargs)
    else:
        def make_any(count, *args, **kwargs):
            return cls(count, *args, policy=policy, **kwargs)
    make_any.kind = kind
    make_any.policy = policy
    make_any.repr_args = "" if policy is None else f"policy={policy!r}, "
    return make_any
