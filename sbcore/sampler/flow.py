"""The probability-flow ODE of a Schrödinger bridge from its forward and backward drifts.

Derivation, in sbcore's conventions (`sbcore.process.base`: the forward drift f(x, t) moves t from 0 to 1,
the backward drift b(x, t) is the drift of the time reversal in reversed time s = 1 - t, both evaluated
at the original time t). Let the forward SDE be dX = f(X, t) dt + g(t) dW with marginals p_t (Song et al.
2021, "Score-Based Generative Modeling through SDEs", eq. (5)). Its time reversal (Anderson 1982; Song et
al. eq. (6)) runs dX = [f - g^2 grad log p_t] dt + g dW-bar backwards in t, which in reversed time has drift

    b(x, t) = -f(x, t) + g(t)^2 grad log p_t(x).                                               (1)

The deterministic flow with the same marginals p_t (Song et al. eq. (13); Maoutsa et al. 2020) is

    dx/dt = f - (g^2 / 2) grad log p_t = f - (f + b) / 2 = (f(x, t) - b(x, t)) / 2,            (2)

using (1) to eliminate the score. A run that trained both directions of the same bridge (DSBM's forward
and backward networks, Shi et al. 2023, whose reference code samples its pair with exactly this ODE by
dopri5 at tolerance 1e-5; spec dsbm_sdsb.md §1.2) therefore needs no score: the ODE's velocity is the
average of the forward drift and the reversed backward drift. Moving backward (t from 1 to 0), the same
field in reversed time is (b - f) / 2, so in the direction's own time the ODE is always

    dx/ds = (own drift - reverse drift) / 2,

which is what `probability_flow` integrates. Where a method has one drift and a score instead, (1) gives
the other drift (`score_reverse`). Unlike the SDE's, the ODE's coupling (x_0, x_1) is deterministic: it
keeps the marginals but is not the entropic plan (Shi et al. 2023 say so), so plan scores differ.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from torch import Tensor

from sbcore.process.base import expand_t
from sbcore.sampler.adaptive import METHODS, AdaptiveODE
from sbcore.sampler.base import Estimate, Predictor, Sampler, Trajectory
from sbcore.sampler.grids import Grid
from sbcore.sampler.integrators import EulerODE, HeunODE

SOLVERS = ("euler", "heun", *METHODS)


def other(direction: str) -> str:
    return "backward" if direction == "forward" else "forward"


def score_reverse(model: Predictor, score: Callable[[Tensor, Tensor], Tensor]) -> Predictor:
    """The reverse-direction Predictor of `model` from the marginal score, eq. (1): -drift + g(t)^2 score.

    Attach it as ``model.reverse`` to sample a drift + score pair with `probability_flow`.
    """
    process = model.process

    def drift(x: Tensor, t: Tensor, **inputs: object) -> Tensor:  # the inputs already ride in `model`
        g = expand_t(process.diffusion(t).to(x), x)
        return -model(x, t).drift + g**2 * score(x, t)

    return Predictor(drift, process, other(model.direction), "drift", model.cond, model.label)


@attrs.frozen
class FlowEstimate(Estimate):
    """The own direction's estimate, whose drift is the probability flow's, eq. (2)."""

    reverse: Estimate

    @property
    def drift(self) -> Tensor:
        return (super().drift - self.reverse.drift) / 2


class FlowPredictor(Predictor):
    """`model` and its `reverse` evaluated together (two network evaluations per call)."""

    def __init__(self, model: Predictor) -> None:
        if model.reverse is None:
            raise ValueError(
                f"sampler probability_flow needs both directions' networks of one bridge; this model has only "
                f"the {model.direction} one (train method.directions: [forward, backward], or pass Predictor.reverse)"
            )
        if model.reverse.direction != other(model.direction):
            raise ValueError(f"Predictor.reverse must run {other(model.direction)}, got {model.reverse.direction}")
        super().__init__(model.network, model.process, model.direction, model.predict, model.cond, model.label,
                         model.reverse)
        self.model = model

    def __call__(self, x: Tensor, t: Tensor) -> FlowEstimate:
        own = self.model(x, t)
        return FlowEstimate(self, x, t, own.output, self.model.reverse(x, t))


class ProbabilityFlow(Sampler):
    """The probability-flow ODE (2) of a two-direction run, integrated by `solver`.

    solver: ``euler`` or ``heun`` on the sampler's grid of `steps` intervals (2 or 4 evaluations per step),
    or an adaptive method of torchdiffeq (`sbcore.sampler.adaptive.METHODS`, default dopri5 at DSBM's
    rtol = atol = 1e-5), where `steps` are output intervals and the error control sets the cost.
    NFE counts both networks' evaluations.
    """

    needs_reverse = True

    def __init__(self, steps: int = 100, solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 grid: Grid = "uniform", grid_size: int | None = None) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if solver in METHODS:
            self.inner: Sampler = AdaptiveODE(steps, solver, rtol, atol, grid, grid_size)
        else:
            self.inner = (EulerODE if solver == "euler" else HeunODE)(steps, grid, grid_size)
        super().__init__(self.inner.steps, grid, grid_size)
        self.solver, self.rtol, self.atol = solver, float(rtol), float(atol)
        self.evals_per_step = 2 * self.inner.evals_per_step

    def __repr__(self) -> str:
        return (f"ProbabilityFlow(steps={self.steps}, solver={self.solver!r}, rtol={self.rtol}, atol={self.atol}, "
                f"grid={self.grid!r}, grid_size={self.grid_size!r})")

    def nfe(self, steps: int | None = None) -> int | None:
        """Twice the solver's evaluations; None for an adaptive solver (known only after integrating)."""
        inner = self.inner.nfe(steps)
        return None if inner is None else 2 * inner

    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False) -> Trajectory:
        trajectory = self.inner.sample(FlowPredictor(model), x_start, grid, callback=callback,
                                       return_path=return_path, record=record)
        return attrs.evolve(trajectory, nfe=2 * trajectory.nfe)  # each evaluation of the flow calls both networks
