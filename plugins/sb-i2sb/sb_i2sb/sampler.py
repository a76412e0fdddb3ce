"""I2SB's generation chain: DDPM-style steps through the posterior of the one-sided bridge (Liu et al.
2023, eq. (4) with x0 replaced by the network's estimate; Alg. 2).

From x_n at step n to an earlier step p, with s_n = std_fwd[n], s_p = std_fwd[p], d^2 = s_n^2 - s_p^2:

    x_p = (d^2 / s_n^2) x0_hat + (s_p^2 / s_n^2) x_n  +  sqrt(s_p^2 d^2 / s_n^2) z,

with no noise on the step that lands on the grid's last time, nor for a deterministic reference
(OT-ODE, whose diffusion is 0). The chain returns that last state, not x0_hat: with the estimate exact
it lands on x0 + (s_0^2 / s_N^2)(x1 - x0) (0.07 % of the way back to x1 for beta_max 0.3). `steps` is the
NFE; the default ``respaced`` grid visits `space_indices(interval, steps + 1)` of the process's steps,
like the reference sampler.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from sbcore.process.base import expand_t
from sbcore.sampler.base import Callback, Estimate, FixedGridSampler, Predictor, Trajectory


class I2SBPosterior(FixedGridSampler):
    """Posterior-step sampler from x1 (t = 1) to x0 (t = 0) for a process with `std_fwd(t)`.

    clip_denoise: clamp every x0 estimate to [-1, 1] before it is used (the reference's --clip-denoise).
    ot_ode: true keeps only the posterior mean (OT-ODE), false adds the noise, null follows the process; a run
        trained either way samples either way (``sbcore eval ... sampler.ot_ode=true``).
    `record=True` keeps the (clamped) x0 estimate of every step, the reference's `pred_x0s`.
    """

    def __init__(self, steps: int = 100, grid: Literal["uniform", "respaced"] = "respaced",
                 grid_size: int | None = None, clip_denoise: bool = False, ot_ode: bool | None = None) -> None:
        super().__init__(steps, grid, grid_size)
        self.clip_denoise = clip_denoise
        self.ot_ode = ot_ode

    @torch.no_grad()
    def sample(self, model: Predictor, x_start: Tensor, grid: Tensor, *, callback: Callback | None = None,
               return_path: bool = False, record: bool = False) -> Trajectory:
        if model.direction != "backward":
            raise ValueError(f"I2SBPosterior samples the backward direction (x1 -> x0), got {model.direction!r}")
        if not hasattr(model.process, "std_fwd"):
            raise TypeError(f"I2SBPosterior needs a process with std_fwd(t) (i2sb, scheduled), got {model.process!r}")
        return super().sample(model, x_start, grid, callback=callback, return_path=return_path, record=record)

    def step(self, model: Predictor, x: Tensor, t0: Tensor, t1: Tensor, dt: Tensor, last: bool
             ) -> tuple[Tensor, Estimate]:
        """One posterior step from t0 (step n) to t1 (step p); the estimate it returns is the (clamped) x0_hat."""
        process = model.process
        estimate = model(x, t0)
        x0_hat = estimate.endpoint
        if self.clip_denoise:
            x0_hat = x0_hat.clamp(-1, 1)
            estimate = Estimate(Predictor(model.network, process, model.direction, "endpoint"), x, t0, x0_hat)
        s_n2 = expand_t(process.std_fwd(t0), x) ** 2
        s_p2 = expand_t(process.std_fwd(t1), x) ** 2
        d2 = s_n2 - s_p2
        x = d2 / s_n2 * x0_hat + s_p2 / s_n2 * x
        stochastic = bool((process.diffusion(t0) > 0).all()) if self.ot_ode is None else not self.ot_ode
        if not last and stochastic:
            x = x + (s_p2 * d2 / s_n2).sqrt() * process.noise_like(x)
        return x, estimate
