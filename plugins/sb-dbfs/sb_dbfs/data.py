"""Gaussian-process functions on [0, 1]: the 1-D function-space bridge of the DBFS spec (dbfs.md, Sec. 8.2).

A sample is the GP evaluated exactly (Cholesky) at the cell centres (i + 1/2) / size of a grid, the points
of the spectral process's DCT-II basis, so one source can be drawn natively at any resolution.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbcore.data.base import Source


class GaussianProcessSource(Source):
    """GP(m, k) with m(x) = amplitude sin(2 pi frequency x) and k = scale^2 exp(-(x - x')^2 / (2 lengthscale^2)).

    size: grid points N; samples have shape (1, N).
    jitter: added to the kernel's diagonal, relative to scale^2, so the Cholesky factor exists at any N.
    """

    fresh_draws = True

    def __init__(self, size: int = 32, lengthscale: float = 0.25, scale: float = 1.0, amplitude: float = 0.0,
                 frequency: float = 1.0, jitter: float = 1e-6) -> None:
        if size < 1:
            raise ValueError(f"size: expected an integer >= 1, got {size}")
        for name, value in (("lengthscale", lengthscale), ("scale", scale), ("jitter", jitter)):
            if not value > 0:
                raise ValueError(f"{name}: expected a positive number, got {value}")
        self.size, self.lengthscale, self.scale = int(size), float(lengthscale), float(scale)
        self.amplitude, self.frequency, self.jitter = float(amplitude), float(frequency), float(jitter)
        self.shape = (1, self.size)
        x = (torch.arange(self.size, dtype=torch.float64) + 0.5) / self.size
        self.mean = self.amplitude * torch.sin(2 * math.pi * self.frequency * x)
        self.cov = self.scale**2 * (torch.exp(-(x[:, None] - x[None, :]).square() / (2 * self.lengthscale**2))
                                    + self.jitter * torch.eye(self.size, dtype=torch.float64))
        self._chol = torch.linalg.cholesky(self.cov).float()

    def __repr__(self) -> str:
        return (f"GaussianProcessSource(size={self.size}, lengthscale={self.lengthscale}, scale={self.scale}, "
                f"amplitude={self.amplitude}, frequency={self.frequency})")

    def at(self, size: int) -> GaussianProcessSource:
        """The same GP on another grid."""
        return GaussianProcessSource(size, self.lengthscale, self.scale, self.amplitude, self.frequency, self.jitter)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, self.size, generator=generator)
        return (self.mean.float() + z @ self._chol.T).unsqueeze(1)
