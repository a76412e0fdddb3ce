"""Independent random streams derived from one seed.

Two torch generators seeded with the same integer produce the same numbers. A data generator and the
global RNG that share a seed make the sampler's noise a copy of the data's noise: a Gaussian start
point and its first Euler-Maruyama increment become identical, which biases every statistic of the
samples. So each stream is derived from (seed, ...) through a 64-bit mixing function instead.

The mixer is SplitMix64's finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014): every input bit flips about half of the output bits, so neighbouring keys
((seed, step, 0) and (seed, step + 1, 0)) give unrelated seeds. It runs on every training step, where
numpy's SeedSequence (same purpose) cost 1 % of a small network's step.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    """SplitMix64's output function of the state z + golden gamma."""
    z = (z + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def derive_seeds(*key: int, count: int = 2) -> tuple[int, ...]:
    """`count` independent 63-bit seeds for the integer `key` (e.g. seed, step, index).

    The key's length is mixed in first, so (3, 0, 0) and (3,) give different streams. Seeds stay below
    2**63 so that every consumer (torch, numpy, Python) takes them as they are."""
    h = _mix(len(key))
    for k in key:
        h = _mix(h ^ (k & _MASK))
    return tuple(_mix(h + i * _GOLDEN) >> 1 for i in range(1, count + 1))
