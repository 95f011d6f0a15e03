"""Key sets and access sequences, all pre-built from fixed seeds so every contender and every
run sees exactly the same keys in the same order."""
from __future__ import annotations

import itertools
import random
from typing import List, Sequence, Set, Tuple, TypeVar

_T = TypeVar("_T")

SEED = 20261122
# Odoo-like ormcache keys: (model name, method, record id).
MODELS = (
    "res.partner", "res.users", "res.company", "product.product", "product.template",
    "account.move", "account.account", "sale.order", "stock.quant", "ir.model.fields",
    "ir.ui.view", "ir.model.access", "ir.rule", "res.currency", "uom.uom", "res.lang",
)
METHODS = (
    "_compute_display_name", "_get_access", "_check_company", "_read_group", "_get_view",
    "_compute_field_value", "_search", "check", "_get_rules", "_get_translation",
)


def int_keys(n: int, seed: int = SEED) -> List[int]:
    """n distinct ints, scattered like record ids of a large database."""
    return random.Random(seed).sample(range(1, 50 * n + 1), n)


def tuple_keys(n: int, seed: int = SEED) -> List[Tuple[str, str, int]]:
    """n distinct ``(model_name, method, id)`` tuples."""
    rng = random.Random(seed)
    keys: List[Tuple[str, str, int]] = []
    seen: Set[Tuple[str, str, int]] = set()
    while len(keys) < n:
        key = (rng.choice(MODELS), rng.choice(METHODS), rng.randrange(1, 20 * n))
        if key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def uniform_sequence(keys: Sequence[_T], n: int, seed: int = SEED) -> List[_T]:
    """n keys drawn uniformly from ``keys`` (with repeats)."""
    return random.Random(seed + 1).choices(keys, k=n)


def zipf_sequence(key_space: int, s: float, n: int, seed: int = SEED) -> List[int]:
    """n int keys drawn from ``key_space`` distinct keys with Zipf(s) popularity.

    The rank -> key mapping is shuffled so the popular keys are not neighbouring ints.
    """
    keys = int_keys(key_space, seed + 2)
    cum = list(itertools.accumulate(1.0 / rank ** s for rank in range(1, key_space + 1)))
    return random.Random(seed + 3).choices(keys, cum_weights=cum, k=n)
