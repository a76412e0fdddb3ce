"""The `Sampler` interface and its output type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import attrs
from torch import Tensor

from sbcore.process.base import ReferenceProcess

#: drift(x, t) -> velocity in the direction of travel; t has shape (B,).
Drift = Callable[[Tensor, Tensor], Tensor]


@attrs.frozen
class Trajectory:
    """Result of one integration.

    x: final state, shape (B, *D).
    path: all states including the start, shape (len(grid), B, *D), or None when not asked for.
    nfe: number of drift evaluations used.
    """

    x: Tensor
    path: Tensor | None
    nfe: int


class Sampler(ABC):
    """Integrates `drift` along `grid` (decreasing for backward-in-time sampling)."""

    @abstractmethod
    def sample(
        self,
        drift: Drift,
        x_start: Tensor,
        grid: Tensor,
        process: ReferenceProcess,
        return_path: bool = False,
    ) -> Trajectory:
        """Integrate from `x_start` at grid[0] to grid[-1]."""
