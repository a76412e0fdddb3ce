"""Variance-preserving diffusion as a deterministic path from data x_0 to Gaussian noise x_1 = eps.

x_t = sqrt(abar(t)) x_0 + sqrt(1 - abar(t)) eps (DDPM, Ho et al. 2020, eq. (4); the VP SDE of Song et al.
2021, eq. (11)). Given both ends the path is deterministic (c = 0), so its drift is the
probability-flow ODE, d/dt x_t = -beta/2 x_t + beta/(2 sqrt(1 - abar)) eps forward, and the diffusion
is 0: integrating it backward with a predicted eps is DDIM with eta = 0 (Song et al. 2021, eq. (12)).
The x_0, eps and score parameterisations convert through `eps_coefficients` and `score`.

abar(t) comes from the continuous linear schedule beta(t) = beta_min + (beta_max - beta_min) t, or, with
``steps: N``, from DDPM's discrete product over guided-diffusion's linear betas
linspace(1e-4, 0.02) * 1000/N, placed at t_i = i / (N - 1) (log abar linear in between), so data
sits at index 0 as in DDIB's encoder.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction, expand_t


class VPDiffusion(ReferenceProcess):
    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, steps: int | None = None) -> None:
        if not 0 <= beta_min <= beta_max or beta_max <= 0:
            raise ValueError(f"need 0 <= beta_min <= beta_max, beta_max > 0; got {beta_min}, {beta_max}")
        if steps is not None and steps < 2:
            raise ValueError(f"steps must be >= 2 or null, got {steps}")
        self.beta_min, self.beta_max, self.steps = float(beta_min), float(beta_max), steps
        self.grid_size = steps
        if steps is not None:
            betas = torch.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps, dtype=torch.float64)
            self._log_abar = torch.cumsum(torch.log1p(-betas), 0)

    def __repr__(self) -> str:
        return f"VPDiffusion(beta_min={self.beta_min}, beta_max={self.beta_max}, steps={self.steps})"

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if self.steps is None:
            return -(self.beta_min * t + (self.beta_max - self.beta_min) * t**2 / 2)
        pos = t * (self.steps - 1)
        lo = pos.floor().clamp(0, self.steps - 2)
        table = self._log_abar.to(device=t.device, dtype=t.dtype if t.is_floating_point() else torch.float64)
        left, right = table[lo.long()], table[lo.long() + 1]
        return left + (pos - lo) * (right - left)

    def beta(self, t: Tensor) -> Tensor:
        """-d/dt log abar(t)."""
        t = torch.as_tensor(t)
        if self.steps is None:
            return self.beta_min + (self.beta_max - self.beta_min) * t
        lo = (t * (self.steps - 1)).floor().clamp(0, self.steps - 2).long()
        table = self._log_abar.to(device=t.device, dtype=t.dtype if t.is_floating_point() else torch.float64)
        return -(table[lo + 1] - table[lo]) * (self.steps - 1)

    def alpha_bar(self, t: Tensor) -> Tensor:
        return self.log_alpha_bar(t).exp()

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        abar = self.alpha_bar(t)
        return abar.sqrt(), (1 - abar).clamp_min(0).sqrt(), torch.zeros_like(abar)

    def drift_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        check_direction(direction)
        beta, abar = self.beta(t), self.alpha_bar(t)
        if direction == "forward":  # towards eps
            return beta / (2 * (1 - abar).sqrt()), -beta / 2
        return beta * abar.sqrt() / (2 * (1 - abar)), -beta * abar / (2 * (1 - abar))

    def eps_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        check_direction(direction)
        a, b, _ = self.coefficients(t)
        if direction == "forward":
            return torch.zeros_like(a), torch.ones_like(a)
        return 1 / a, -b / a

    def score(self, eps: Tensor, t: Tensor) -> Tensor:
        """grad log p_t(x_t) = -eps / sqrt(1 - abar(t))."""
        return -eps / expand_t(self.coefficients(torch.as_tensor(t, dtype=eps.dtype, device=eps.device))[1], eps)

    def diffusion(self, t: Tensor) -> Tensor:
        return torch.zeros_like(torch.as_tensor(t, dtype=torch.get_default_dtype()))

    def gaussian_eps(self, mean: Tensor, std: float) -> Callable[[Tensor, Tensor], Tensor]:
        """The exact eps-predictor when the data is N(mean, std^2 I): E[eps | x_t] = b (x - a mean) / (a^2 std^2 + b^2).

        A network stand-in for closed-form checks of samplers (DDIB between Gaussians approaches the OT map).
        """

        def network(x: Tensor, t: Tensor) -> Tensor:
            a, b, _ = self.coefficients(t)
            a, b = expand_t(a, x), expand_t(b, x)
            return b * (x - a * mean) / (a**2 * std**2 + b**2)

        return network

