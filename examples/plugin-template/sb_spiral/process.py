"""A reference process: the Brownian bridge of dX = sigma sqrt(2t) dW (noise grows with time).

With beta(t) = 2t the accumulated variance is sigma^2 B(t), B(t) = t^2, so between x_0 and x_1

    x_t = (1 - t^2) x_0 + t^2 x_1 + sigma t sqrt(1 - t^2) z,

the drift towards x_1 is 2t / (1 - t^2) (x_1 - x_t), and in reversed time towards x_0 it is
2t / t^2 (x_0 - x_t) = 2 / t (x_0 - x_t). The noise variable is eps = (x_t - end) / (sigma sqrt(v)),
v = 1 - t^2 forward and t^2 backward (the variance still to come).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction


class QuadraticBridge(ReferenceProcess):
    def __init__(self, sigma: float = 1.0) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = torch.as_tensor(t)
        r = t * t
        return 1 - r, r, self.sigma * torch.sqrt((r * (1 - r)).clamp_min(0))

    def _left(self, t: Tensor, direction: Direction) -> Tensor:
        """B(1) - B(t) forward, B(t) backward: the variance (over sigma^2) still to come."""
        check_direction(direction)
        t = torch.as_tensor(t)
        return 1 - t * t if direction == "forward" else t * t

    def drift_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        u = 2 * torch.as_tensor(t) / self._left(t, direction)
        return u, -u

    def eps_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        left = self._left(t, direction)
        return torch.ones_like(left), -self.sigma * left.sqrt()

    def diffusion(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        return self.sigma * torch.sqrt(2 * t.clamp_min(0))
