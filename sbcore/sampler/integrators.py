"""Fixed-grid integrators: Euler–Maruyama for SDEs, Euler and Heun for probability-flow ODEs.

All of them move along `grid` (increasing or decreasing) and add `drift * |dt|`, matching the
convention of `ReferenceProcess.drift_target` (the backward drift lives in reversed time).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from sbcore.process.base import ReferenceProcess, expand_t
from sbcore.sampler.base import Drift, Sampler, Trajectory


class FixedGridSampler(Sampler):
    """Walks the grid one step at a time; subclasses define one step and its drift evaluations."""

    evals_per_step: int = 1

    def __init__(self, steps: int = 100) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = steps

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    @abstractmethod
    def step(
        self, drift: Drift, x: Tensor, t0: Tensor, t1: Tensor, dt: Tensor, process: ReferenceProcess, last: bool
    ) -> Tensor:
        """Advance x from time t0 to t1 (both of shape (B,)); dt = |t1 - t0| is a scalar."""

    @torch.no_grad()
    def sample(
        self, drift: Drift, x_start: Tensor, grid: Tensor, process: ReferenceProcess, return_path: bool = False
    ) -> Trajectory:
        x = x_start
        path = [x] if return_path else None
        n = len(grid) - 1
        for k in range(n):
            t0 = grid[k].expand(x.shape[0]).to(x)
            t1 = grid[k + 1].expand(x.shape[0]).to(x)
            dt = (grid[k + 1] - grid[k]).abs().to(x)
            x = self.step(drift, x, t0, t1, dt, process, last=k == n - 1)
            if path is not None:
                path.append(x)
        return Trajectory(x, torch.stack(path) if path is not None else None, nfe=self.evals_per_step * n)


class EulerMaruyama(FixedGridSampler):
    """x <- x + drift(x, t_k) |dt| + g(t_k) sqrt(|dt|) xi  (DSBM Sec. 4, the paper's sampler).

    `last_step_noise=False` returns the mean of the last step, as DSBM's image code does.
    """

    def __init__(self, steps: int = 100, last_step_noise: bool = True) -> None:
        super().__init__(steps)
        self.last_step_noise = last_step_noise

    def step(self, drift, x, t0, t1, dt, process, last):
        x = x + drift(x, t0) * dt
        if self.last_step_noise or not last:
            x = x + expand_t(process.diffusion(t0), x) * dt.sqrt() * process.noise_like(x)
        return x


class EulerODE(FixedGridSampler):
    """Explicit Euler on dx = drift(x, t) dt (one evaluation per step)."""

    def step(self, drift, x, t0, t1, dt, process, last):
        return x + drift(x, t0) * dt


class HeunODE(FixedGridSampler):
    """Heun's second-order method (trapezoidal predictor–corrector), two evaluations per step."""

    evals_per_step = 2

    def step(self, drift, x, t0, t1, dt, process, last):
        d0 = drift(x, t0)
        return x + 0.5 * (d0 + drift(x + d0 * dt, t1)) * dt
