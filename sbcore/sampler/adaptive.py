"""Adaptive Runge–Kutta integration of an ODE-form sampler's drift through torchdiffeq (optional extra ``ode``).

The state moves by dx = drift(x, t) |dt| along the grid (`sbcore.process.base`: a backward drift lives in
reversed time), i.e. dx/dt = ±drift with the sign of the grid's direction; torchdiffeq integrates either
way. Each grid interval is one `odeint` call with error control rtol/atol (Dormand & Prince 1980 for
``dopri5``), so the per-step callback can replace the state and every interval's first evaluation, at
(x_k, t_k) itself, is the step's recorded estimate at no extra cost. The grid's `steps` are output points,
not a budget: the number of network evaluations is what the error control asks for, counted and returned
as `Trajectory.nfe` (one per evaluation of the Predictor, as the fixed-grid samplers count).

A drift computed from a predicted end (a network predicting the endpoint, eps or velocity) is singular at
that end where the reference pins it (u = 1/(1 - t) on a Brownian bridge, 1/b^2 on the continuous VP path). There
the last interval stops `end_margin` short of the end and lands on the predicted end with one more evaluation,
as Song et al. 2021 sample to t = eps and denoise, and as `euler`'s and DDIM's last steps do.

Like `euler` and `heun`, it integrates the drift without noise: the ODE of a deterministic path (VP, the
sigma = 0 bridge) or `probability_flow`'s ODE; on a noisy bridge the drift alone is not an ODE of its marginals.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.errors import require
from sbcore.sampler.base import Estimate, Sampler, Trajectory
from sbcore.sampler.grids import Grid

#: torchdiffeq's adaptive-step solvers (fixed-step ones are the core's `euler` and `heun`).
METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


class AdaptiveODE(Sampler):
    """dx/dt = ±drift(x, t) by an adaptive Runge–Kutta method, one `odeint` per grid interval.

    method: one of `METHODS`; rtol, atol: torchdiffeq's error tolerances (DSBM's test sampler: dopri5 at
    1e-5). `steps` (default 1) are output intervals (path, callback, record), not network evaluations.
    end_margin: how far short of a singular end the integration stops (see the module).
    """

    def __init__(self, steps: int = 1, method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 grid: Grid = "uniform", grid_size: int | None = None,
                 end_margin: float = 1e-3) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        if not 0 < end_margin < 0.5:
            raise ValueError(f"end_margin must be in (0, 0.5), got {end_margin}")
        super().__init__(steps, grid, grid_size)
        self.method, self.rtol, self.atol, self.end_margin = method, float(rtol), float(atol), float(end_margin)

    def nfe(self, steps: int | None = None) -> None:
        """Not known before integrating: the error control decides (each Trajectory counts its own)."""
        return None

    @torch.no_grad()
    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False) -> Trajectory:
        torchdiffeq = require("torchdiffeq", "ode", f"sampler adaptive_ode (method {self.method})")
        calls = 0
        sign = 1.0 if model.direction == "forward" else -1.0
        x = x_start
        path = [x] if return_path else None
        predictions: list[Tensor] = []
        first: list[Estimate] = []  # the interval's first evaluation, at (x_k, t_k)
        last_t = [grid[0]]

        def field(t: Tensor, y: Tensor) -> Tensor:
            nonlocal calls
            calls += 1
            last_t[0] = t
            estimate = model(y, t.expand(y.shape[0]).to(y))
            if not first:
                first.append(estimate)
            drift = estimate.drift
            if not bool(torch.isfinite(drift).all()):
                raise ValueError(f"the drift is not finite at t = {float(t):.6g}; a drift towards a predicted "
                                 "end is singular at that end: end the grid short of it or use ddim/heun")
            return sign * drift

        u_end = model.process.drift_coefficients(grid[-1:].to(x_start), model.direction)[0]
        singular_end = model.predict != "drift" and not bool(torch.isfinite(u_end).all())
        n = len(grid) - 1
        for k in range(n):
            first.clear()
            interval = grid[k:k + 2].to(x)
            land = singular_end and k == n - 1
            if land:  # stop short of the end, then land on the predicted end
                margin = min(self.end_margin, float(interval.diff().abs()) / 2)
                interval = torch.stack([interval[0], interval[1] - sign * margin])
            # step_t: the last step ends on the interval's end instead of stepping past it and interpolating back
            try:
                x = torchdiffeq.odeint(field, x, interval, rtol=self.rtol, atol=self.atol, method=self.method,
                                       options={"step_t": interval[1:]})[-1]
            except AssertionError as exc:  # torchdiffeq's "underflow in dt"
                raise ValueError(f"sampler adaptive_ode: the step size vanished near t = {float(last_t[0]):.6g} "
                                 f"({exc}): the drift is singular or too stiff there") from None
            if land:
                calls += 1
                x = model(x, interval[1].expand(x.shape[0])).endpoint
            if callback is not None:
                replaced = callback(k, x, grid[k + 1].expand(x.shape[0]).to(x), first[0])
                x = x if replaced is None else replaced
            if record:
                predictions.append(first[0].endpoint)
            if path is not None:
                path.append(x)
        return Trajectory(x, torch.stack(path) if path is not None else None, nfe=calls,
                          predictions=torch.stack(predictions) if record else None)

