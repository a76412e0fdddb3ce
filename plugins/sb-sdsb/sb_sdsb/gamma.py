"""The per-step noise schedule gamma_k of Simplified DSB (Tang et al. 2024, Sec. 3; De Bortoli et al. 2021, eq. (12)).

A chain step adds sqrt(2 gamma_k) xi. Schedules are given as strings, as in the reference code:

* ``linear``               gamma rises linearly from 1e-4 to 0.1 over N/2 steps, then mirrors;
* ``linear_MIN_MAX``       the same from MIN to MAX (``linear_1e-4_1e-3``: the paper's 2-D setting);
* ``constant``             gamma = 5e-4 at every step;
* ``constant_VALUE``       gamma = VALUE at every step.

The linear schedules are symmetric (small at both ends), so they need an even number of steps; every
schedule here is symmetric, gamma_k = gamma_{N-1-k}, so a chain and its time reversal use the same
noise at mirrored steps.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

LINEAR_DEFAULT = (1.0e-4, 0.1)
CONSTANT_DEFAULT = 5.0e-4
FORMS = "'linear', 'linear_MIN_MAX', 'constant' or 'constant_VALUE' (numbers >= 0, MIN <= MAX)"


def _number(text: str) -> float:
    value = float(text)  # ValueError for non-numbers, reported by `parse_gamma`
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


@attrs.frozen
class GammaSchedule:
    """A parsed schedule: `kind` linear (low -> high -> low) or constant (`high` unused)."""

    kind: str
    low: float
    high: float
    text: str

    def values(self, steps: int, key: str = "gamma") -> Tensor:
        """gamma_0 .. gamma_{steps-1} in float64."""
        if steps < 1:
            raise ValueError(f"{key}: needs at least one step, got {steps}")
        if self.kind == "constant":
            return torch.full((steps,), self.low, dtype=torch.float64)
        if steps % 2:
            raise ValueError(f"{key}: {self.text!r} is symmetric (N/2 rising values, then mirrored) and needs an "
                             f"even number of steps, got {steps}")
        half = torch.linspace(self.low, self.high, steps // 2, dtype=torch.float64)
        return torch.cat([half, half.flip(0)])


def parse_gamma(text: str, key: str = "gamma") -> GammaSchedule:
    """Parse and validate a schedule string; errors are one line naming `key` and the given string."""
    if not isinstance(text, str):
        raise ValueError(f"{key}: expected a string, one of {FORMS}; got {text!r}")
    kind, _, rest = text.partition("_")
    try:
        numbers = [_number(part) for part in rest.split("_")] if rest else []
    except ValueError:
        raise ValueError(f"{key}: expected {FORMS}; got {text!r} (not a number)") from None
    if kind == "linear" and len(numbers) in (0, 2):
        low, high = numbers or LINEAR_DEFAULT
    elif kind == "constant" and len(numbers) in (0, 1):
        low = high = numbers[0] if numbers else CONSTANT_DEFAULT
    else:
        raise ValueError(f"{key}: expected {FORMS}; got {text!r}")
    if low < 0 or high < 0:
        raise ValueError(f"{key}: gamma must be >= 0, got {text!r}")
    if low > high:
        raise ValueError(f"{key}: MIN must be <= MAX in 'linear_MIN_MAX', got {text!r}")
    return GammaSchedule(kind, low, high, text)
