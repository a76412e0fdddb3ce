"""The `Sampler` interface, the network-through-a-process it integrates, and its output type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction
from sbcore.sampler.grids import GRIDS, Grid, respacing_count, time_grid

#: after each step: callback(k, x, t, estimate) -> replacement x or None (e.g. inpainting's projection).
Callback = Callable[[int, Tensor, Tensor, "Estimate"], "Tensor | None"]


@attrs.frozen
class Trajectory:
    """Result of one integration.

    x: final state, shape (B, *D).
    path: all states including the start, shape (len(grid), B, *D), or None when not asked for.
    nfe: number of network evaluations used.
    predictions: the predicted end (x1-hat forward, x0-hat backward) at every step,
        shape (len(grid) - 1, B, *D), or None when not asked for.
    """

    x: Tensor
    path: Tensor | None
    nfe: int
    predictions: Tensor | None = None


class Predictor:
    """A network seen through a process in one direction: one evaluation, converted on demand.

    `predict` names what the network outputs (`sbcore.process.base.Prediction`); `cond` is passed to
    the network as ``cond=`` (e.g. I2SB's corrupted input) and `label` as ``label=`` (class labels of a
    class-conditional network, an int or a (B,) tensor) when given. Guidance wraps a Predictor
    (`sbcore.sampler.guidance`), so every sampler gains it. `reverse` is the other direction's Predictor over
    the same marginals, where a run trained both (the probability-flow ODE needs it).
    """

    def __init__(
        self, network: Callable[..., Tensor], process: ReferenceProcess, direction: Direction,
        predict: str = "drift", cond: Tensor | None = None, label: Tensor | int | None = None,
        reverse: Predictor | None = None,
    ) -> None:
        check_direction(direction)
        self.network, self.process, self.direction, self.predict, self.cond = network, process, direction, predict, cond
        self.label, self.reverse = label, reverse

    def inputs(self, label: Tensor | int | None = None) -> dict[str, Any]:
        """The network's keyword inputs: ``cond=``, and ``label=`` (`label` overrides this Predictor's)."""
        label = self.label if label is None else label
        return ({} if self.cond is None else {"cond": self.cond}) | ({} if label is None else {"label": label})

    def __call__(self, x: Tensor, t: Tensor) -> Estimate:
        return Estimate(self, x, t, self.network(x, t, **self.inputs()))

    def with_cond(self, cond: Tensor | None) -> Predictor:
        reverse = None if self.reverse is None else self.reverse.with_cond(cond)
        return Predictor(self.network, self.process, self.direction, self.predict, cond, self.label, reverse)


def drift_model(drift: Callable[[Tensor, Tensor], Tensor], process: ReferenceProcess,
                direction: Direction = "forward") -> Predictor:
    """A known drift function (a closed form, a test's field) as a Predictor."""
    return Predictor(drift, process, direction, "drift")


@attrs.frozen
class Estimate:
    """One network output at (x, t), with the drift, end point and noise it implies."""

    predictor: Predictor
    x: Tensor
    t: Tensor
    output: Tensor

    def _convert(self, what: str) -> Tensor:
        p = self.predictor
        return getattr(p.process, what)(p.predict, self.output, self.x, self.t, p.direction)

    @property
    def drift(self) -> Tensor:
        return self._convert("drift")

    @property
    def endpoint(self) -> Tensor:
        return self._convert("endpoint")

    @property
    def eps(self) -> Tensor:
        return self._convert("eps")


class Sampler(ABC):
    """Integrates a `Predictor` along a time grid the sampler owns (`steps` and `grid` kind).

    grid: ``uniform``, ``respaced``, ``logsnr`` (uniform in log(a/b)) or a guided-diffusion respacing string
    such as ``ddim50`` or ``10,20,30`` (`sbcore.sampler.grids`; it sets `steps`); `grid_size` is the number of
    discrete training times a respaced grid picks from (I2SB's interval, DDIB's diffusion steps); null takes the
    process's own.
    """

    evals_per_step: int = 1
    #: integrates both directions' networks together (`Predictor.reverse`), e.g. the probability-flow ODE
    needs_reverse: bool = False

    def __init__(self, steps: int = 100, grid: Grid = "uniform",
                 grid_size: int | None = None) -> None:
        if grid not in GRIDS:  # a respacing string ("ddim50", "10,20,30") fixes the steps
            steps = respacing_count(grid) - 1
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if grid_size is not None and grid_size <= steps:
            raise ValueError(f"grid_size must be > steps ({steps}), got {grid_size}")
        self.steps, self.grid, self.grid_size = steps, grid, grid_size

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def check_process(self, process: ReferenceProcess) -> None:  # noqa: B027 - most samplers take any process
        """Raise ValueError or TypeError when this sampler cannot integrate `process`; called at set-up, so
        a mismatch is a config error before any run folder or sampling, never a mid-run crash."""

    def time_grid(self, process: ReferenceProcess, direction: Direction, steps: int | None = None,
                  **like: Any) -> Tensor:
        """The times this sampler visits in `direction`, `steps` (default: its own) intervals; a respaced
        grid picks from the sampler's `grid_size`, else the process's."""
        size = self.grid_size or process.grid_size
        return time_grid(self.grid, steps or self.steps, direction, size, process, **like)

    def nfe(self, steps: int | None = None) -> int:
        return self.evals_per_step * (steps or self.steps)

    @abstractmethod
    def sample(
        self, model: Predictor, x_start: Tensor, grid: Tensor, *, callback: Callback | None = None,
        return_path: bool = False, record: bool = False,
    ) -> Trajectory:
        """Integrate from `x_start` at grid[0] to grid[-1]; `record` keeps every step's predicted end."""


class FixedGridSampler(Sampler):
    """Walks the grid one step at a time; subclasses define one step and its network evaluations."""

    @abstractmethod
    def step(
        self, model: Predictor, x: Tensor, t0: Tensor, t1: Tensor, dt: Tensor, last: bool
    ) -> tuple[Tensor, Estimate]:
        """Advance x from t0 to t1 (both (B,)); dt = |t1 - t0| is a scalar. Returns (x, first estimate)."""

    @torch.no_grad()
    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False):
        x = x_start
        path = [x] if return_path else None
        predictions: list[Tensor] | None = [] if record else None
        n = len(grid) - 1
        for k in range(n):
            t0 = grid[k].expand(x.shape[0]).to(x)
            t1 = grid[k + 1].expand(x.shape[0]).to(x)
            dt = (grid[k + 1] - grid[k]).abs().to(x)
            x, estimate = self.step(model, x, t0, t1, dt, last=k == n - 1)
            if callback is not None:
                replaced = callback(k, x, t1, estimate)
                x = x if replaced is None else replaced
            if predictions is not None:
                predictions.append(estimate.endpoint)
            if path is not None:
                path.append(x)
        return Trajectory(
            x, torch.stack(path) if path is not None else None, nfe=self.evals_per_step * n,
            predictions=torch.stack(predictions) if predictions else None,
        )
