"""DDIM and the solvers of its ODE on any deterministic Gaussian path (c(t) = 0), in both directions.

On a path x_t = a(t) x_0 + b(t) x_1 (VP diffusion with x_1 = eps, the sigma = 0 bridge) one network
output at (x, t) fixes both ends: the direction's end from the prediction and the other end from the
path relation. DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. (12) with sigma_t = 0)
re-draws x at the next time from these two estimates,

    x_{t1} = a(t1) x0_hat + b(t1) x1_hat,

which is Euler's method on the probability-flow ODE d(x/a)/d(b/a) = x1_hat (Song et al. 2021, eq. (14);
Karras et al. 2022, Sec. 3). Backward on VP this decodes latents into data, forward it
encodes data into latents (DDIB, Su et al. 2023, Sec. 3.1).

``eta > 0`` (decoding on VP only, as guided-diffusion's `ddim_sample`) is DDIM's eq. (12) with eq. (16)'s
sigma_t = eta sqrt((1 - abar_1)/(1 - abar_0)) sqrt(1 - abar_0/abar_1): x_{t1} = sqrt(abar_1) x0_hat +
sqrt(1 - abar_1 - sigma^2) eps_hat + sigma z. ``clip_denoised`` clamps x0_hat to [-1, 1] and re-derives the
other end from the path relation (guided-diffusion's `_predict_eps_from_xstart`), in both directions.

``reference_compat`` reproduces guided-diffusion's DDIM loops as DDIB runs them: ``steps`` = S training
times picked by `space_indices(grid_size, S)` (timestep respacing), S network evaluations, and the last
one *lands on the predicted end* instead of the path's marginal at the last time: decoding returns
x0_hat (abar_{-1} = 1), encoding returns the last eps_hat (abar_next[T-1] = 0). The time grid repeats
its last time to make room for that landing step. With a respacing string (``grid: ddim50``) the string's
times are the S training times.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from sbcore.process.base import ReferenceProcess, expand_t
from sbcore.process.vp import VPDiffusion
from sbcore.sampler.base import Estimate, FixedGridSampler, Predictor, Trajectory
from sbcore.sampler.grids import GRIDS, Grid


def side_coefficients(process: ReferenceProcess, t: Tensor, direction: str) -> tuple[Tensor, Tensor]:
    """(S, E): x_t = S * start + E * end on a deterministic path, for the direction's start and end sides."""
    a, b, _ = process.coefficients(t)
    return (a, b) if direction == "forward" else (b, a)


def both_ends(estimate: Estimate) -> tuple[Tensor, Tensor]:
    """(start_hat, end_hat) implied by one network output: the end from the prediction, the start
    from x = S start + E end."""
    p, x = estimate.predictor, estimate.x
    end = estimate.endpoint
    s, e = side_coefficients(p.process, estimate.t, p.direction)
    return (x - expand_t(e, x) * end) / expand_t(s, x), end


class DeterministicPathSampler(FixedGridSampler):
    """Shared grid, landing rule and checks of the samplers that re-draw x from both predicted ends."""

    def __init__(self, steps: int = 100, grid: Grid = "uniform",
                 grid_size: int | None = None, reference_compat: bool = False, clip_denoised: bool = False) -> None:
        if reference_compat and steps < 2 and grid in GRIDS:
            raise ValueError(f"steps must be >= 2 with reference_compat (S training times), got {steps}")
        super().__init__(steps - 1 if reference_compat else steps, grid, grid_size)
        self.steps += 1 if reference_compat else 0  # S training times: S - 1 steps and the landing step
        self.reference_compat, self.clip_denoised = reference_compat, clip_denoised

    def time_grid(self, process: ReferenceProcess, direction: str, steps: int | None = None, **like) -> Tensor:
        """reference_compat: the `steps` picked training times, then the last one again (the landing step)."""
        if not self.reference_compat:
            return super().time_grid(process, direction, steps, **like)
        grid = super().time_grid(process, direction, (steps or self.steps) - 1, **like)
        return torch.cat([grid, grid[-1:]])

    def nfe(self, steps: int | None = None) -> int:
        """Network evaluations of `steps` steps (the landing step costs one); a trajectory counts its own,
        fewer where a second-order step falls back to first order."""
        steps = steps or self.steps
        if self.reference_compat:
            return self.evals_per_step * (steps - 1) + 1
        return self.evals_per_step * steps

    def ends(self, estimate: Estimate) -> tuple[Tensor, Tensor]:
        """(start_hat, end_hat) of one output; with `clip_denoised` the x0 side is clamped to [-1, 1] and the
        other side re-derived from x = S start + E end."""
        start, end = both_ends(estimate)
        if not self.clip_denoised:
            return start, end
        p = estimate.predictor
        s, e = (expand_t(c, estimate.x) for c in side_coefficients(p.process, estimate.t, p.direction))
        if p.direction == "backward":  # x0 is the end
            end = end.clamp(-1, 1)
            return (estimate.x - e * end) / s, end
        start = start.clamp(-1, 1)
        return start, (estimate.x - s * start) / e

    def land(self, model: Predictor, x: Tensor, t0: Tensor) -> tuple[Tensor, Estimate]:
        """guided-diffusion's last step: the predicted end itself (x0_hat decoding, eps_hat encoding)."""
        estimate = model(x, t0)
        return self.ends(estimate)[1], estimate

    def check_process(self, process) -> None:
        c = process.coefficients(self.time_grid(process, "forward"))[2]
        if (c != 0).any():
            raise ValueError(f"sampler {type(self).__name__} needs a deterministic path (c(t) = 0); "
                             f"{process!r} has c(t) up to {float(c.abs().max()):.3g}")

    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False) -> Trajectory:
        c = model.process.coefficients(grid.to(x_start))[2]
        if (c != 0).any():
            raise ValueError(f"sampler {type(self).__name__} needs a deterministic path (c(t) = 0); "
                             f"{model.process!r} has c(t) up to {float(c.abs().max()):.3g}")
        calls = 0

        def counted(*args, **kwargs):
            nonlocal calls
            calls += 1
            return model.network(*args, **kwargs)

        counting = Predictor(counted, model.process, model.direction, model.predict, model.cond, model.label)
        trajectory = super().sample(counting, x_start, grid, callback=callback, return_path=return_path, record=record)
        return attrs.evolve(trajectory, nfe=calls)


class DDIM(DeterministicPathSampler):
    """DDIM: x_{t1} = S(t1) start_hat + E(t1) end_hat from one evaluation at (x, t0); `eta` > 0 adds fresh
    noise when decoding a VP path (see the module)."""

    def __init__(self, steps: int = 100, grid: Grid = "uniform",
                 grid_size: int | None = None, reference_compat: bool = False, clip_denoised: bool = False,
                 eta: float = 0.0) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        super().__init__(steps, grid, grid_size, reference_compat, clip_denoised)
        self.eta = float(eta)

    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False) -> Trajectory:
        if self.eta > 0 and (model.direction != "backward" or not isinstance(model.process, VPDiffusion)):
            raise ValueError(f"DDIM's eta > 0 decodes a VP diffusion (backward); got the {model.direction} "
                             f"direction on {model.process!r}: use eta = 0")
        return super().sample(model, x_start, grid, callback=callback, return_path=return_path, record=record)

    def step(self, model, x, t0, t1, dt, last):
        if last and self.reference_compat:
            return self.land(model, x, t0)
        estimate = model(x, t0)
        start, end = self.ends(estimate)
        s1, e1 = (expand_t(c, x) for c in side_coefficients(model.process, t1, model.direction))
        if self.eta == 0:
            return s1 * start + e1 * end, estimate
        s0, e0 = (expand_t(c, x) for c in side_coefficients(model.process, t0, model.direction))
        sigma = self.eta * (s1 / s0) * (1 - e0**2 / e1**2).clamp_min(0).sqrt()
        noise = model.process.noise_like(x)
        return e1 * end + (s1**2 - sigma**2).clamp_min(0).sqrt() * start + sigma * noise, estimate


class DDIMHeun(DeterministicPathSampler):
    """Heun's second-order method on DDIM's ODE d(x/a)/d(b/a) = x1_hat, in both directions (Karras et al.
    2022, Algorithm 1, with sigma = b/a; Lu et al. 2022's DPM-Solver-2 with r1 = 1 in the eps form): a DDIM
    step, a second evaluation at its result, and the trapezoidal correction
    (b(t1) - a(t1) b(t0)/a(t0)) (x1_hat' - x1_hat) / 2. Where a(t0) = 0 or b(t1) = 0 (the ends of the
    sigma = 0 bridge) the step stays first order with one evaluation, as Karras et al.'s last step.
    The x0_hat slope of the other form is far less accurate on VP paths.
    """

    evals_per_step = 2

    def step(self, model, x, t0, t1, dt, last):
        if last and self.reference_compat:
            return self.land(model, x, t0)
        first = model(x, t0)
        x0_hat, x1_hat = self.x0_x1(first)
        (a0, b0, _), (a1, b1, _) = (model.process.coefficients(t[:1]) for t in (t0, t1))
        euler = expand_t(a1, x) * x0_hat + expand_t(b1, x) * x1_hat
        if not (a0 > 0 and b1 > 0):  # rho(t0) infinite or x1_hat undefined at t1: Euler (Karras et al.)
            return euler, first
        _, x1_next = self.x0_x1(model(euler, t1))
        return euler + expand_t(b1 - a1 * b0 / a0, x) * (x1_next - x1_hat) / 2, first


    def x0_x1(self, estimate: Estimate) -> tuple[Tensor, Tensor]:
        start, end = self.ends(estimate)
        return (start, end) if estimate.predictor.direction == "forward" else (end, start)


class DPMSolverPP(DeterministicPathSampler):
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
    Models", Algorithm 2): a multistep second-order solver of the data-prediction ODE, one evaluation per step.

    With lambda = log(alpha/sigma) and h_i = lambda(t_i) - lambda(t_{i-1}), each step is the exact solution of
    the linear part with the prediction D_i held fixed (their eq. (9) at first order, i.e. DDIM):

        x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (exp(-h_i) - 1) D_i,
        D_i = (1 + 1/(2 r_i)) x0_hat_{i-1} - 1/(2 r_i) x0_hat_{i-2},   r_i = h_{i-1} / h_i,

    with D_1 = x0_hat_0 (the first step is first order). sbcore writes it for either direction of a
    deterministic path x = S start + E end: the data prediction is the direction's end, alpha -> E and
    sigma -> S (decoding VP: E = sqrt(abar), S = sqrt(1 - abar), Lu et al.'s setting exactly); the network may
    predict eps or x0, the process converts. A step that lands on the end itself (S = 0, lambda infinite) is
    first order. Encoding (forward) runs the same algorithm towards eps.
    """

    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False) -> Trajectory:
        self._previous: tuple[Tensor, Tensor] | None = None  # (end_hat, h) of the previous step
        try:
            return super().sample(model, x_start, grid, callback=callback, return_path=return_path, record=record)
        finally:
            self._previous = None

    def step(self, model, x, t0, t1, dt, last):
        if last and self.reference_compat:
            return self.land(model, x, t0)
        estimate = model(x, t0)
        end = self.ends(estimate)[1]
        (s0, e0), (s1, e1) = (side_coefficients(model.process, t[:1], model.direction) for t in (t0, t1))
        h = (e1 / s1).log() - (e0 / s0).log()
        d = end
        if self._previous is not None and torch.isfinite(h).all():
            previous, h_previous = self._previous
            r = h_previous / h
            if torch.isfinite(r).all() and (r > 0).all():
                d = (1 + 1 / (2 * r)) * end - 1 / (2 * r) * previous
        self._previous = (end, h)
        return expand_t(s1 / s0, x) * x + expand_t(e1 - s1 * e0 / s0, x) * d, estimate
