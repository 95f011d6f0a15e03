"""Fixtures of the policy engine's tests (``fastlru.Cache``, issue #22): each test of
``test_policy_*.py`` that asks for them runs on both implementations (the compiled engine, which
must have built, and its pure-Python twin) and, with ``policy`` or ``make``, every policy."""
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
