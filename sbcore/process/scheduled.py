"""Brownian bridge with a time-varying diffusion, dX = sqrt(beta(t)) dW (I2SB, Liu et al. 2023, eq. (11)).

With sigma2(t) = int_0^t beta and total S = sigma2(1), the bridge between fixed endpoints is

    x_t = (1 - sigma2/S) x_0 + (sigma2/S) x_1 + sqrt(sigma2 (S - sigma2) / S) z,

its drift towards x_1 is beta(t) (x_1 - x_t) / (S - sigma2(t)) and towards x_0 (in reversed time)
beta(t) (x_0 - x_t) / sigma2(t). I2SB's noise variable is eps = (x_t - x_0) / std_fwd(t) with
std_fwd = sqrt(sigma2) (its eq. (12) label); forward it is (x_t - x_1) / std_bwd, std_bwd = sqrt(S - sigma2).
A constant beta = sigma^2 is exactly `BrownianBridge(sigma)`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Literal

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction

Schedule = Literal["constant", "linear", "symmetric"]


class GaussianBridge(ReferenceProcess):
    """The bridge of dX = sqrt(beta(t)) dW, given its two one-sided variances.

    var_fwd(t): variance the reference adds from x_0 up to t (std_fwd^2); var_bwd(t): from t up to x_1
    (std_bwd^2). The product of the two one-sided Gaussians gives the marginal (I2SB eq. (11)):
    a = var_bwd / (var_fwd + var_bwd), b = var_fwd / (...), c^2 = var_fwd var_bwd / (...); the drift
    towards x_1 is beta (x_1 - x_t) / var_bwd and towards x_0 beta (x_0 - x_t) / var_fwd. Continuous
    schedules have var_fwd + var_bwd = const; tabulated ones (I2SB's inclusive sums) need not.
    """

    @abstractmethod
    def var_fwd(self, t: Tensor) -> Tensor:
        """Variance of the reference started at x_0, at time t."""

    @abstractmethod
    def var_bwd(self, t: Tensor) -> Tensor:
        """Variance the reference still adds from t to the end x_1."""

    @abstractmethod
    def beta(self, t: Tensor) -> Tensor:
        """The diffusion rate beta(t) = g(t)^2."""

    def std_fwd(self, t: Tensor) -> Tensor:
        return self.var_fwd(t).clamp_min(0).sqrt()

    def std_bwd(self, t: Tensor) -> Tensor:
        return self.var_bwd(t).clamp_min(0).sqrt()

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        fwd, bwd = self.var_fwd(t), self.var_bwd(t)
        total = fwd + bwd
        return bwd / total, fwd / total, (fwd * bwd / total).clamp_min(0).sqrt()

    def drift_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        check_direction(direction)
        rest = self.var_bwd(t) if direction == "forward" else self.var_fwd(t)
        u = self.beta(t) / rest
        return u, -u

    def eps_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        check_direction(direction)
        std = self.std_bwd(t) if direction == "forward" else self.std_fwd(t)
        return torch.ones_like(std), -std

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()


class ScheduledBridge(GaussianBridge):
    """Scheduled Brownian bridge.

    schedule: ``constant`` (beta = beta_max), ``linear`` (beta_min -> beta_max over [0, 1]) or
        ``symmetric``: I2SB's schedule, sqrt(beta) rising linearly from sqrt(beta_min) towards sqrt(beta_max)
        on [0, 1/2] and mirrored on [1/2, 1], so the bridge is least noisy near both ends. Its
        defaults are I2SB's (per-step 1e-4 and beta_max/1000 over 1000 steps; beta_max 0.3 gives
        sum(beta) = 0.141, the code's 0.14103).
    """

    def __init__(self, schedule: Schedule = "symmetric", beta_min: float = 0.1, beta_max: float = 0.3) -> None:
        if schedule not in ("constant", "linear", "symmetric"):
            raise ValueError(f"schedule must be constant, linear or symmetric, got {schedule!r}")
        if not beta_max > 0 or not beta_min >= 0:
            raise ValueError(f"need beta_max > 0 and beta_min >= 0, got beta_min={beta_min}, beta_max={beta_max}")
        if schedule != "constant" and beta_min > beta_max:
            raise ValueError(f"beta_min ({beta_min}) must be <= beta_max ({beta_max})")
        self.schedule = schedule
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def __repr__(self) -> str:
        return f"ScheduledBridge(schedule={self.schedule!r}, beta_min={self.beta_min}, beta_max={self.beta_max})"

    # ---- the schedule, analytic --------------------------------------------------------------

    def beta(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if self.schedule == "constant":
            return torch.full_like(t, self.beta_max, dtype=t.dtype if t.is_floating_point() else None)
        if self.schedule == "linear":
            return self.beta_min + (self.beta_max - self.beta_min) * t
        s = torch.minimum(t, 1 - t)
        root0, slope = math.sqrt(self.beta_min), math.sqrt(self.beta_max) - math.sqrt(self.beta_min)
        return (root0 + slope * s) ** 2

    def _half_integral(self, s: Tensor) -> Tensor:
        """int_0^s (r0 + g u)^2 du for the symmetric schedule's rising half."""
        r0, g = math.sqrt(self.beta_min), math.sqrt(self.beta_max) - math.sqrt(self.beta_min)
        return r0**2 * s + r0 * g * s**2 + g**2 * s**3 / 3

    def sigma2(self, t: Tensor) -> Tensor:
        """int_0^t beta: the variance of the reference started at x_0 (std_fwd^2)."""
        t = torch.as_tensor(t)
        if self.schedule == "constant":
            return self.beta_max * t
        if self.schedule == "linear":
            return self.beta_min * t + (self.beta_max - self.beta_min) * t**2 / 2
        half = self._half_integral(torch.as_tensor(0.5, dtype=t.dtype, device=t.device))
        return torch.where(t <= 0.5, self._half_integral(t), 2 * half - self._half_integral(1 - t))

    @property
    def total(self) -> float:
        return float(self.sigma2(torch.tensor(1.0, dtype=torch.float64)))

    def var_fwd(self, t: Tensor) -> Tensor:
        return self.sigma2(t)

    def var_bwd(self, t: Tensor) -> Tensor:
        return self.total - self.sigma2(t)

    @property
    def brownian_sigma(self) -> float | None:
        return math.sqrt(self.beta_max) if self.schedule == "constant" else None
