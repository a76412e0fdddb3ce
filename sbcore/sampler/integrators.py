"""Fixed-grid integrators: Euler–Maruyama for SDEs, Euler and Heun for probability-flow ODEs.

All of them move along `grid` (increasing or decreasing) and add `drift * |dt|`, matching the
convention of `ReferenceProcess.drift_target` (the backward drift lives in reversed time).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.process.base import ReferenceProcess, expand_t
from sbcore.sampler.base import Drift, Sampler, Trajectory


class _FixedGrid(Sampler):
    def __init__(self, steps: int = 100) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = steps

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class EulerMaruyama(_FixedGrid):
    """x <- x + drift(x, t_k) |dt| + g(t_k) sqrt(|dt|) xi  (DSBM Sec. 4, the paper's sampler).

    `last_step_noise=False` returns the mean of the last step, as DSBM's image code does.
    """

    def __init__(self, steps: int = 100, last_step_noise: bool = True) -> None:
        super().__init__(steps)
        self.last_step_noise = last_step_noise

    @torch.no_grad()
    def sample(
        self, drift: Drift, x_start: Tensor, grid: Tensor, process: ReferenceProcess, return_path: bool = False
    ) -> Trajectory:
        x = x_start
        path = [x] if return_path else None
        n = len(grid) - 1
        for k in range(n):
            t = grid[k].expand(x.shape[0]).to(x)
            dt = (grid[k + 1] - grid[k]).abs().to(x)
            x = x + drift(x, t) * dt
            if self.last_step_noise or k < n - 1:
                x = x + expand_t(process.diffusion(t), x) * dt.sqrt() * process.noise_like(x)
            if path is not None:
                path.append(x)
        return Trajectory(x, torch.stack(path) if path is not None else None, nfe=n)


class EulerODE(_FixedGrid):
    """Explicit Euler on dx = drift(x, t) dt (one evaluation per step)."""

    @torch.no_grad()
    def sample(
        self, drift: Drift, x_start: Tensor, grid: Tensor, process: ReferenceProcess, return_path: bool = False
    ) -> Trajectory:
        x = x_start
        path = [x] if return_path else None
        for k in range(len(grid) - 1):
            t = grid[k].expand(x.shape[0]).to(x)
            x = x + drift(x, t) * (grid[k + 1] - grid[k]).abs().to(x)
            if path is not None:
                path.append(x)
        return Trajectory(x, torch.stack(path) if path is not None else None, nfe=len(grid) - 1)


class HeunODE(_FixedGrid):
    """Heun's second-order method (trapezoidal predictor–corrector), two evaluations per step."""

    @torch.no_grad()
    def sample(
        self, drift: Drift, x_start: Tensor, grid: Tensor, process: ReferenceProcess, return_path: bool = False
    ) -> Trajectory:
        x = x_start
        path = [x] if return_path else None
        for k in range(len(grid) - 1):
            t0 = grid[k].expand(x.shape[0]).to(x)
            t1 = grid[k + 1].expand(x.shape[0]).to(x)
            dt = (grid[k + 1] - grid[k]).abs().to(x)
            d0 = drift(x, t0)
            x_pred = x + d0 * dt
            x = x + 0.5 * (d0 + drift(x_pred, t1)) * dt
            if path is not None:
                path.append(x)
        return Trajectory(x, torch.stack(path) if path is not None else None, nfe=2 * (len(grid) - 1))
