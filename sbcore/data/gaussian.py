"""Gaussian data source, the side of a bridge whose Schrödinger bridge is known in closed form.

Pair two of them with `sbcore.metrics.gaussian.GaussianSB(p0.mean, p0.cov, p1.mean, p1.cov, sigma)` to
score a learned bridge exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbcore.data.base import Source


def random_spd(dim: int, seed: int) -> Tensor:
    """R diag(s)² Rᵀ with s = exp(linspace(log 0.5, log 2, dim)) and R a seeded Haar-random rotation.

    The anisotropic covariance of ASBM's Gaussian experiment (Gushchin et al. 2024): standard deviations
    from 0.5 to 2 along random orthogonal axes, so the condition number is 16 for any dim >= 2.
    """
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    rot = q * torch.sign(torch.diagonal(r))  # sign fix makes Q Haar-distributed (Mezzadri 2007)
    std = torch.exp(torch.linspace(math.log(0.5), math.log(2.0), dim, dtype=torch.float64))
    cov = (rot * std.square()) @ rot.T
    return 0.5 * (cov + cov.T)


class GaussianSource(Source):
    """N(mean, cov) in `dim` dimensions; the covariance comes from exactly one of `cov`, `spd_seed`, `std`.

    mean: a scalar (broadcast to every coordinate) or a list of `dim` numbers.
    cov: an explicit symmetric positive definite `dim` x `dim` matrix.
    spd_seed: draw the covariance with `random_spd(dim, spd_seed)`.
    std: otherwise the covariance is std² I.
    """

    fresh_draws = True

    def __init__(
        self,
        dim: int = 2,
        mean: float | list[float] = 0.0,
        std: float = 1.0,
        cov: list[list[float]] | None = None,
        spd_seed: int | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim}")
        if not std > 0:
            raise ValueError(f"std: expected a positive number, got {std}")
        if cov is not None and spd_seed is not None:
            raise ValueError(f"cov and spd_seed: expected at most one of them, got cov={cov} and spd_seed={spd_seed}")
        if (cov is not None or spd_seed is not None) and std != 1.0:
            raise ValueError(f"std: expected the default 1.0 when cov or spd_seed sets the covariance, got {std}")
        self.shape = (dim,)
        self._mean = self._check_mean(mean, dim)
        if cov is not None:
            self._cov = self._check_cov(cov, dim)
        elif spd_seed is not None:
            self._cov = random_spd(dim, spd_seed)
        else:
            self._cov = std**2 * torch.eye(dim, dtype=torch.float64)
        # sampling runs in float32 (its error is far below Monte-Carlo error); a diagonal covariance
        # needs no matrix product, which keeps data drawing out of the training step's cost.
        diagonal = torch.count_nonzero(self._cov - torch.diag(torch.diagonal(self._cov))) == 0
        self._scale = torch.diagonal(self._cov).sqrt().float() if diagonal else None
        self._chol = torch.linalg.cholesky(self._cov).float()
        self._mean32 = self._mean.float()

    @staticmethod
    def _check_mean(mean: float | list[float], dim: int) -> Tensor:
        m = torch.as_tensor(mean, dtype=torch.float64)
        if m.ndim == 0:
            return m.expand(dim).clone()
        if m.shape != (dim,):
            got = f"{len(m)} numbers" if m.ndim == 1 else f"shape {tuple(m.shape)}"
            raise ValueError(f"mean: expected a number or a list of {dim} numbers (dim={dim}), got {got}")
        return m

    @staticmethod
    def _check_cov(cov: list[list[float]], dim: int) -> Tensor:
        try:
            c = torch.as_tensor(cov, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cov: expected a {dim} x {dim} matrix of numbers (dim={dim}), got {cov!r}") from err
        if c.shape != (dim, dim):
            raise ValueError(f"cov: expected a {dim} x {dim} matrix (dim={dim}), got shape {tuple(c.shape)}")
        if not torch.allclose(c, c.T, rtol=1e-10, atol=1e-12):
            raise ValueError(f"cov: expected a symmetric matrix, got max |cov - cov^T| = {(c - c.T).abs().max():.3g}")
        eig_min = torch.linalg.eigvalsh(c).min().item()
        if eig_min <= 0:
            raise ValueError(f"cov: expected a positive definite matrix, got smallest eigenvalue {eig_min:.3g}")
        return c

    def __repr__(self) -> str:
        return f"GaussianSource(dim={self.shape[0]}, mean={self._mean.tolist()}, cov={self._cov.tolist()})"

    @property
    def mean(self) -> Tensor:
        """Mean, float64, shape (dim,)."""
        return self._mean

    @property
    def cov(self) -> Tensor:
        """Covariance, float64, shape (dim, dim)."""
        return self._cov

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, self.shape[0], generator=generator)
        return (z * self._scale if self._scale is not None else z @ self._chol.T) + self._mean32
