"""Brownian bridge reference, dX = sigma dW (DSBM, Shi et al. 2023, Sec. 3 and eq. (8))."""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction


class BrownianBridge(ReferenceProcess):
    """x_t = (1-t) x_0 + t x_1 + sigma sqrt(t(1-t)) z.

    sigma = 0 gives the straight interpolant of rectified flow / flow matching.
    Forward drift (x_1 - x_t)/(1-t), backward (x_0 - x_t)/t (DSBM eq. (8)); eps is the I2SB-style
    noise (x_t - end) / (sigma sqrt(time left)), defined for sigma > 0.
    """

    def __init__(self, sigma: float = 1.0) -> None:
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"BrownianBridge(sigma={self.sigma})"

    @property
    def brownian_sigma(self) -> float:
        return self.sigma

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = torch.as_tensor(t)
        return 1 - t, t, self.sigma * torch.sqrt((t * (1 - t)).clamp_min(0))

    def drift_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        u = 1 / self.time_left(torch.as_tensor(t), direction)
        return u, -u

    def eps_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        check_direction(direction)
        if self.sigma == 0:
            raise ValueError("predict: eps needs a noisy reference (sigma > 0); the sigma = 0 bridge has no noise")
        left = self.time_left(torch.as_tensor(t), direction)
        return torch.ones_like(left), -self.sigma * left.sqrt()

    def diffusion(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        return torch.full(t.shape, self.sigma, dtype=dtype, device=t.device)
