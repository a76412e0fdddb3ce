"""The `ReferenceProcess` interface: Gaussian bridges between two endpoints, and what a network predicts.

Every built-in reference is a Gaussian path  x_t = a(t) x_0 + b(t) x_1 + c(t) z  with z drawn by
`noise_like` (white noise, or trace-class noise in function space). Sampling a direction means
moving from its start (x_0 forward, x_1 backward) to its *end* (x_1 forward, x_0 backward). What a
sampler integrates, the conditional drift towards the end, is affine in (end, x_t):

    drift = u(t) * end + w(t) * x_t            (`drift_coefficients`)

and each process also says how its noise variable relates to the end:

    end = p(t) * x_t + q(t) * eps              (`eps_coefficients`)

so one conversion layer (`target`, `endpoint`, `drift`) turns any named prediction into the
training target and into the drift, for every process (compare flow_matching's AffineProbPath).
The backward drift is expressed in reversed time (s = 1 - t): a sampler moving from t=1 to t=0
adds `drift * |dt|` in both directions. Everything here is analytic, so float64 checks are exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, get_args

import torch
from torch import Tensor

Direction = Literal["forward", "backward"]
#: what a network outputs: the drift of its direction, the end it heads to (`endpoint`, or the side's
#: name `x0`/`x1` when it is that direction's end), the process's noise variable, or the velocity
#: (end - x_t) / (time left) that reaches the end on a straight line.
Prediction = Literal["drift", "endpoint", "x0", "x1", "eps", "velocity"]
PREDICTIONS: tuple[str, ...] = get_args(Prediction)
#: direction -> (the side it starts from, the side it ends on). The only copy of this map.
ENDS: dict[str, tuple[str, str]] = {"forward": ("x0", "x1"), "backward": ("x1", "x0")}


def expand_t(t: Tensor | float, x: Tensor) -> Tensor:
    """Broadcast a per-sample time of shape (B,) (or a scalar) against x of shape (B, ...)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def check_direction(direction: str) -> None:
    if direction not in ENDS:
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")


def check_prediction(predict: str, directions: tuple[str, ...]) -> None:
    """`x0`/`x1` name the end of one direction; every trained direction must end there."""
    if predict not in PREDICTIONS:
        raise ValueError(f"predict must be one of {', '.join(PREDICTIONS)}; got {predict!r}")
    for direction in directions:
        end = ENDS[direction][1]
        if predict in ("x0", "x1") and predict != end:
            raise ValueError(
                f"predict: {predict} is the end of the {'forward' if predict == 'x1' else 'backward'} direction, "
                f"but the {direction} network ends at {end}; use predict: endpoint (each network predicts its own end)"
            )


class ReferenceProcess(ABC):
    """Reference Q on t in [0, 1]: its bridge marginals, conditional drifts and prediction conversions.

    `grid_size` is the number of discrete times a process was defined on (None: continuous); a
    sampler's respaced grid picks its times from those.
    """

    grid_size: int | None = None

    def check_data_shape(self, shape: tuple[int, ...]) -> None:  # noqa: B027 - optional, most processes take any
        """Raise ValueError when samples of `shape` (no batch axis) are not data this process can bridge;
        called at set-up, before a run folder exists, so a mismatch is a config error and not a mid-run crash."""

    @property
    def brownian_sigma(self) -> float | None:
        """sigma when this reference is dX = sigma dW (closed-form Gaussian SBs apply), else None."""
        return None

    @abstractmethod
    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(a, b, c) of x_t = a x_0 + b x_1 + c z, each of t's shape."""

    @abstractmethod
    def drift_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        """(u, w): the conditional drift towards the direction's end is u * end + w * x_t."""

    @abstractmethod
    def eps_coefficients(self, t: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        """(p, q): the direction's end is p * x_t + q * eps, which defines this process's eps."""

    @abstractmethod
    def diffusion(self, t: Tensor) -> Tensor:
        """Diffusion coefficient g(t) of the SDE a sampler integrates (0 for deterministic paths)."""

    # ---- what every process derives from the coefficients -----------------------------------

    def noise_like(self, x: Tensor) -> Tensor:
        """White noise by default; function-space processes return trace-class noise."""
        return torch.randn_like(x)

    def mean(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        a, b, _ = self.coefficients(torch.as_tensor(t, dtype=x0.dtype, device=x0.device))
        return expand_t(a, x0) * x0 + expand_t(b, x0) * x1

    def std(self, t: Tensor) -> Tensor:
        """Standard deviation c(t) of the bridge marginal around its mean."""
        return self.coefficients(t)[2]

    def sample_bridge(self, x0: Tensor, x1: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Draw x_t ~ Q(x_t | x_0, x_1); `noise` (same shape as x0) makes the draw reproducible."""
        if noise is None:
            noise = self.noise_like(x0)
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        a, b, c = self.coefficients(t)
        return expand_t(a, x0) * x0 + expand_t(b, x0) * x1 + expand_t(c, x0) * noise

    def drift_target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """Conditional drift of Q's bridge at (x_t, t) towards x_1 ("forward") or x_0 ("backward")."""
        return self.target("drift", x0, x1, x_t, t, direction)

    def time_left(self, t: Tensor, direction: Direction) -> Tensor:
        """Time still to travel before the direction's end: 1 - t forward, t backward."""
        check_direction(direction)
        return 1 - t if direction == "forward" else t

    def target(self, predict: str, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """What a network that predicts `predict` regresses onto, for the bridge draw x_t of (x0, x1)."""
        check_direction(direction)
        end = x1 if direction == "forward" else x0
        if predict in ("endpoint", "x0", "x1"):
            check_prediction(predict, (direction,))
            return end
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        if predict == "drift":
            u, w = self.drift_coefficients(t, direction)
            return expand_t(u, x_t) * end + expand_t(w, x_t) * x_t
        if predict == "eps":
            p, q = self.eps_coefficients(t, direction)
            return (end - expand_t(p, x_t) * x_t) / expand_t(q, x_t)
        if predict == "velocity":
            return (end - x_t) / expand_t(self.time_left(t, direction), x_t)
        check_prediction(predict, (direction,))
        raise AssertionError(predict)

    def endpoint(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """The end (x1 forward, x0 backward) implied by a network output; inverse of `target`."""
        check_direction(direction)
        if predict in ("endpoint", "x0", "x1"):
            return output
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        if predict == "drift":
            u, w = self.drift_coefficients(t, direction)
            return (output - expand_t(w, x_t) * x_t) / expand_t(u, x_t)
        if predict == "eps":
            p, q = self.eps_coefficients(t, direction)
            return expand_t(p, x_t) * x_t + expand_t(q, x_t) * output
        if predict == "velocity":
            return x_t + expand_t(self.time_left(t, direction), x_t) * output
        check_prediction(predict, (direction,))
        raise AssertionError(predict)

    def drift(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """The drift a sampler integrates, from a network output (identity for `predict: drift`)."""
        if predict == "drift":
            return output
        end = self.endpoint(predict, output, x_t, t, direction)
        u, w = self.drift_coefficients(torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device), direction)
        return expand_t(u, x_t) * end + expand_t(w, x_t) * x_t

    def eps(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """The process's noise variable implied by a network output."""
        if predict == "eps":
            return output
        end = self.endpoint(predict, output, x_t, t, direction)
        p, q = self.eps_coefficients(torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device), direction)
        return (end - expand_t(p, x_t) * x_t) / expand_t(q, x_t)

    def remaining_variance(self, t: Tensor, direction: Direction) -> Tensor:
        """Variance the reference still adds before the direction's end (loss weighting; 0 if deterministic)."""
        u, _ = self.drift_coefficients(t, direction)
        g = self.diffusion(t)
        return torch.where(u == 0, torch.zeros_like(u), g**2 / u)
