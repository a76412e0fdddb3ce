"""Brownian bridge reference, dX = sigma dW (DSBM, Shi et al. 2023, Sec. 3 and eq. (8))."""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, expand_t


class BrownianBridge(ReferenceProcess):
    """x_t = (1-t) x_0 + t x_1 + sigma sqrt(t(1-t)) z.

    sigma = 0 gives the straight interpolant of rectified flow / flow matching.
    Forward target (x_1 - x_t)/(1-t), backward target (x_0 - x_t)/t (DSBM eq. (8)).
    """

    def __init__(self, sigma: float = 1.0) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"BrownianBridge(sigma={self.sigma})"

    def mean(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        tt = expand_t(t, x0)
        return (1 - tt) * x0 + tt * x1

    def std(self, t: Tensor) -> Tensor:
        return self.sigma * torch.sqrt(t * (1 - t))

    def sample_bridge(self, x0: Tensor, x1: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = self.noise_like(x0)
        return self.mean(x0, x1, t) + expand_t(self.std(t), x0) * noise

    def drift_target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        tt = expand_t(t, x_t)
        if direction == "forward":
            return (x1 - x_t) / (1 - tt)
        if direction == "backward":
            return (x0 - x_t) / tt
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")

    def diffusion(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        return torch.full(t.shape, self.sigma, dtype=dtype, device=t.device)
