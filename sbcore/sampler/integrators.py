"""Fixed-grid integrators: Euler–Maruyama for SDEs, Euler and Heun for probability-flow ODEs.

All of them move along the grid (increasing or decreasing) and add `drift * |dt|`, matching the
convention of `ReferenceProcess.drift_target` (the backward drift lives in reversed time).
"""

from __future__ import annotations

import torch

from sbcore.process.base import expand_t
from sbcore.sampler.base import FixedGridSampler
from sbcore.sampler.grids import Grid


class EulerMaruyama(FixedGridSampler):
    """x <- x + drift(x, t_k) |dt| + g(t_k) sqrt(|dt|) xi  (DSBM Sec. 4, the paper's sampler).

    `last_step_noise=False` returns the mean of the last step, as DSBM's image code does.
    """

    def __init__(self, steps: int = 100, last_step_noise: bool = True,
                 grid: Grid = "uniform", grid_size: int | None = None) -> None:
        super().__init__(steps, grid, grid_size)
        self.last_step_noise = last_step_noise

    def step(self, model, x, t0, t1, dt, last):
        estimate = model(x, t0)
        x = x + estimate.drift * dt
        if self.last_step_noise or not last:
            process = model.process
            x = x + expand_t(process.diffusion(t0), x) * dt.sqrt() * process.noise_like(x)
        return x, estimate


class EulerODE(FixedGridSampler):
    """Explicit Euler on dx = drift(x, t) dt (one evaluation per step)."""

    def step(self, model, x, t0, t1, dt, last):
        estimate = model(x, t0)
        return x + estimate.drift * dt, estimate


class HeunODE(FixedGridSampler):
    """Heun's second-order method (trapezoidal predictor–corrector), two evaluations per step."""

    evals_per_step = 2

    def step(self, model, x, t0, t1, dt, last):
        first = model(x, t0)
        d0 = first.drift
        d1 = model(x + d0 * dt, t1).drift
        if last:  # a drift towards a predicted end is singular at the end (u = 1/0): that step stays Euler
            d1 = torch.where(torch.isfinite(d1), d1, d0)
        return x + 0.5 * (d0 + d1) * dt, first
