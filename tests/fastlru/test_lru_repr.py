"""``repr`` keeps every constructor argument it can show: LRU, the lru_cache wrappers, Registry."""
import importlib
import time

import pytest

from ormcache import Registry
from support.lru import WRAPPERS


def clock():
    return 0.0


def test_lru_repr_shows_every_argument(LRU):
    lru = LRU(3, [("a", "xy")], on_evict=print, maxweight=5, getsizeof=len, ttl=7, timer=clock)
    assert repr(lru) == (f"{LRU.__name__}(3, [('a', 'xy')], on_evict={print!r}, maxweight=5, "
                         f"getsizeof={len!r}, ttl=7.0, timer={clock!r})")
    assert repr(LRU(2)) == f"{LRU.__name__}(2, [])"


def cached_function(x):
    return x


@pytest.mark.parametrize("name", WRAPPERS)
def test_lru_cache_wrapper_repr_shows_the_function_and_its_parameters(name):
    module = importlib.import_module(name)
    lru_cache, cache = module.lru_cache, module.cache
    where = f"{__name__}.cached_function"
    assert repr(lru_cache(cached_function)) == f"<fastlru.lru_cache of {where} maxsize=128 typed=False>"
    assert repr(cache(cached_function)) == f"<fastlru.lru_cache of {where} maxsize=None typed=False>"
    wrapper = lru_cache(maxsize=10, typed=True, ttl=5, timer=clock, single_flight=True)(cached_function)
    assert repr(wrapper) == (f"<fastlru.lru_cache of {where} maxsize=10 typed=True ttl=5.0 "
                             f"single_flight=True timer={clock!r}>")
    assert repr(lru_cache(maxsize=0, timer=time.monotonic)(cached_function)).endswith("maxsize=0 typed=False>")


def test_registry_repr_shows_its_sizes_and_lru_factory(LRU):
    try:
        registry = Registry("repr-registry", sizes={"default": 10, "mine": 3}, lru_factory=LRU)
        assert repr(registry) == f"<Registry 'repr-registry' sizes={{'default': 10, 'mine': 3}} lru_factory={LRU!r}>"
    finally:
        Registry.delete("repr-registry")
    assert repr(Registry("<default>")) == "<Registry '<default>'>"
