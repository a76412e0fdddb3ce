"""The `ReferenceProcess` interface.

A reference process Q fixes the bridge Q(x_t | x_0, x_1) that every bridge-matching method
interpolates with, and the conditional drift that points from x_t to either end. Keeping it
analytic (no autograd) makes every formula checkable in float64.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor

Direction = Literal["forward", "backward"]


def expand_t(t: Tensor | float, x: Tensor) -> Tensor:
    """Broadcast a per-sample time of shape (B,) (or a scalar) against x of shape (B, ...)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t.reshape(-1, *([1] * (x.ndim - 1)))


class ReferenceProcess(ABC):
    """Reference diffusion Q on t in [0, 1] and its bridge between fixed endpoints."""

    @abstractmethod
    def sample_bridge(self, x0: Tensor, x1: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Draw x_t ~ Q(x_t | x_0, x_1); `noise` (same shape as x0) makes the draw reproducible."""

    @abstractmethod
    def drift_target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """Conditional drift of Q's bridge at (x_t, t), towards x_1 ("forward") or x_0 ("backward").

        The backward drift is expressed in reversed time (s = 1 - t), so a sampler moving from
        t=1 to t=0 adds `drift * |dt|` in both directions.
        """

    @abstractmethod
    def diffusion(self, t: Tensor) -> Tensor:
        """Diffusion coefficient g(t) of Q (dX = f dt + g dW)."""

    def noise_like(self, x: Tensor) -> Tensor:
        """White noise by default; function-space processes return trace-class noise."""
        return torch.randn_like(x)

    def time_grid(self, steps: int, direction: Direction = "forward", **like) -> Tensor:
        """`steps + 1` times from the start of `direction` to its end (uniform by default)."""
        grid = torch.linspace(0.0, 1.0, steps + 1, **like)
        return grid if direction == "forward" else grid.flip(0)
