"""Issue #19, item 5: the "Odoo 18.3+ LRU" contender (our reconstruction from odoo/odoo PR
#205866) is an exact LRU, like the classic one it sits beside in every engine workload."""
import random
import threading
from collections import OrderedDict

from fastlru.bench import impls
from fastlru.bench.odoo_lru import LRU as ClassicLRU
from fastlru.bench.odoo_lru_183 import LRU


def test_same_answers_as_the_classic_lru():
    rng = random.Random(19)
    ours, classic = LRU(16), ClassicLRU(16)
    model = OrderedDict()
    for step in range(20000):
        key = rng.randrange(40)
        op = rng.random()
        if op < 0.5:
            expected = model.get(key)
            if key in model:
                model.move_to_end(key)
            assert ours.get(key) == classic.get(key) == expected, step
        elif op < 0.9:
            model[key] = step
            model.move_to_end(key)
            while len(model) > 16:
                model.popitem(last=False)
            ours[key] = classic[key] = step
        else:
            expected = model.pop(key, None)
            assert ours.pop(key, None) == expected
            if expected is not None:
                classic.pop(key)
        assert list(ours.d) == list(model)  # the oldest first
        assert len(ours) == len(classic) == len(model)


def test_threads_keep_it_bounded_and_consistent():
    cache = LRU(64)
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for i in range(20000):
                key = rng.randrange(256)
                if rng.random() < 0.3:
                    cache[key] = key
                else:
                    value = cache.get(key)
                    assert value is None or value == key
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 64
    assert all(cache.d[key] == key for key in list(cache.d))


def test_it_is_a_required_contender_of_every_engine_workload():
    found, _ = impls.available()
    names = [impl.name for impl in found]
    assert names.index(impls.ODOO) + 1 == names.index(impls.ODOO_183)
    assert impls.ODOO_183 in impls.REQUIRED
    assert "reconstruction" in impls.get(impls.ODOO_183).note
