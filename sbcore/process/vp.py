"""Variance-preserving diffusion as a deterministic path from data x_0 to Gaussian noise x_1 = eps.

x_t = sqrt(abar(t)) x_0 + sqrt(1 - abar(t)) eps (DDPM, Ho et al. 2020, eq. (4); the VP SDE of Song et al.
2021, eq. (11)). Given both ends the path is deterministic (c = 0), so its drift is the
probability-flow ODE, d/dt x_t = -beta/2 x_t + beta/(2 sqrt(1 - abar)) eps forward, and the diffusion
is 0: integrating it backward with a predicted eps is DDIM with eta = 0 (Song et al. 2021, eq. (12)).
The x_0, eps and score parameterisations convert through `eps_coefficients` and `score`.

abar(t) comes from the continuous schedule beta(t), ``linear``: beta_min + (beta_max - beta_min) t, or
``scaled_linear``: (sqrt(beta_min) + (sqrt(beta_max) - sqrt(beta_min)) t)^2 (Stable Diffusion's); or, with
``steps: N``, from DDPM's discrete product prod_{j <= i} (1 - beta_j) over the same schedule's N betas
beta_j = beta(j / (N - 1)) / N, placed at t_i = i / (N - 1) (log abar linear in between), so data sits at
index 0 as in DDIB's encoder. The defaults (0.1, 20) give guided-diffusion's linear betas
linspace(1e-4, 0.02) * 1000/N; diffusers' DDPM schedulers (``beta_start``, ``beta_end``,
``beta_schedule`` linear or scaled_linear, ``num_train_timesteps`` N) are beta_min = N beta_start,
beta_max = N beta_end (`sbcore.process.diffusers_schedule`). ``schedule: cosine`` (discrete only; beta_min and
beta_max unused) is Nichol & Dhariwal 2021's eq. (17), abar(t) = f(t)/f(0) with f(t) = cos((t + 0.008)/1.008
* pi/2)^2, as the betas 1 - f((i + 1)/N) / f(i/N) clipped at 0.999 (their Sec. 3.2; guided-diffusion's
`betas_for_alpha_bar`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction, expand_t

Schedule = Literal["linear", "scaled_linear", "cosine"]


class VPDiffusion(ReferenceProcess):
    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, steps: int | None = None,
                 schedule: Schedule = "linear") -> None:
        if not 0 <= beta_min <= beta_max or beta_max <= 0:
            raise ValueError(f"need 0 <= beta_min <= beta_max, beta_max > 0; got {beta_min}, {beta_max}")
        if steps is not None and steps < 2:
            raise ValueError(f"steps must be >= 2 or null, got {steps}")
        if schedule not in ("linear", "scaled_linear", "cosine"):
            raise ValueError(f"schedule must be linear, scaled_linear or cosine, got {schedule!r}")
        if schedule == "cosine" and steps is None:
            raise ValueError("schedule: cosine is guided-diffusion's discrete schedule: set steps (e.g. 1000)")
        if steps is not None and schedule != "cosine" and beta_max >= steps:
            raise ValueError(f"beta_max / steps is the last discrete beta and must be < 1; got {beta_max} / {steps}")
        self.beta_min, self.beta_max, self.steps, self.schedule = float(beta_min), float(beta_max), steps, schedule
        self.grid_size = steps
        if steps is not None:
            self._log_abar = torch.cumsum(torch.log1p(-self.discrete_betas()), 0)

    def __repr__(self) -> str:
        shown = "" if self.schedule == "linear" else f", schedule={self.schedule!r}"
        return f"VPDiffusion(beta_min={self.beta_min}, beta_max={self.beta_max}, steps={self.steps}{shown})"

    def discrete_betas(self) -> Tensor:
        """The N betas of the discrete schedule (float64): diffusers' ``betas`` for the same config."""
        if self.steps is None:
            raise ValueError("a continuous VP process (steps: null) has no discrete betas")
        n = self.steps
        if self.schedule == "linear":
            return torch.linspace(self.beta_min / n, self.beta_max / n, n, dtype=torch.float64)
        if self.schedule == "cosine":
            def f(t: float) -> float:
                return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

            return torch.tensor([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)], dtype=torch.float64)
        return torch.linspace(math.sqrt(self.beta_min / n), math.sqrt(self.beta_max / n), n, dtype=torch.float64) ** 2

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if self.steps is None:
            if self.schedule == "linear":
                return -(self.beta_min * t + (self.beta_max - self.beta_min) * t**2 / 2)
            r0, g = math.sqrt(self.beta_min), math.sqrt(self.beta_max) - math.sqrt(self.beta_min)
            return -(r0**2 * t + r0 * g * t**2 + g**2 * t**3 / 3)
        pos = t * (self.steps - 1)
        lo = pos.floor().clamp(0, self.steps - 2)
        table = self._log_abar.to(device=t.device, dtype=t.dtype if t.is_floating_point() else torch.float64)
        left, right = table[lo.long()], table[lo.long() + 1]
        return left + (pos - lo) * (right - left)

    def beta(self, t: Tensor) -> Tensor:
        """-d/dt log abar(t)."""
        t = torch.as_tensor(t)
        if self.steps is None:
            if self.schedule == "linear":
                return self.beta_min + (self.beta_max - self.beta_min) * t
            return (math.sqrt(self.beta_min) + (math.sqrt(self.beta_max) - math.sqrt(self.beta_min)) * t) ** 2
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

