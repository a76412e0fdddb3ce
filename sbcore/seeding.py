"""Independent random streams derived from one seed.

Two torch generators seeded with the same integer produce the same numbers. A data generator and the
global RNG that share a seed make the sampler's noise a copy of the data's noise: a Gaussian start
point and its first Euler-Maruyama increment become identical, which biases every statistic of the
samples. So each stream is derived from (seed, ...) through numpy's SeedSequence instead.
"""

from __future__ import annotations

import numpy as np


def derive_seeds(*key: int, count: int = 2) -> tuple[int, ...]:
    """`count` statistically independent 64-bit seeds for the integer `key` (e.g. seed, step, index).

    The key's length goes first: SeedSequence ignores trailing zeros, so (3, 0, 0) and (3,) would
    otherwise give the same streams."""
    entropy = [len(key), *key]
    return tuple(int(s) for s in np.random.SeedSequence(entropy).generate_state(count, dtype=np.uint64))
