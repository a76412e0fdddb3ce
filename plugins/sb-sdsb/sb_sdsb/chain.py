"""Discrete-time chains of (Simplified) DSB: the four training targets, the next-state means, the two
epoch-0 reference chains and the chain simulator (Tang et al. 2024, "Simplified Diffusion Schrödinger
Bridge", Sec. 3-4; De Bortoli et al. 2021, "Diffusion Schrödinger Bridge", Prop. 3 / eq. (12)).

A chain of N steps moves x <- m(x, s) + sqrt(2 gamma_s) xi for s = 0 .. N-1. IPF trains each network on
the time reversal of a chain simulated by the other one (or by the reference at epoch 0). Take that
generating chain y_0 -> y_1 -> ... -> y_N with mean map F_j at its step j: y_0 is the *end* of the network
being trained, whose step s = N - 1 - j maps the state y_{j+1} back towards y_j. The targets for input
y_{j+1} at label s are

    dsb         y_{j+1} + F_j(y_j) - F_j(y_{j+1})   DSB mean matching (De Bortoli et al. 2021, eq. (12))
    simplified  y_j                                  S-DSB: the previous state (Tang et al. 2024, eq. (11))
    term        y_0                                  TR-DSB: the terminal point (Tang et al. 2024, Sec. 4.3)
    flow        (y_0 - y_{j+1}) / ((j + 1) / N)      FR-DSB: the velocity to the terminal point

and the network output becomes the next-state mean m(x, s) through `next_mean`: the output itself for
dsb/simplified, and a step of the straight-line bridge towards the predicted end for term/flow
(x + (x_end - x) / (N - s), resp. x + v / N on the uniform grid).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from sb_sdsb.gamma import parse_gamma
from sbcore.process.base import expand_t
from sbcore.sampler.base import Predictor, Sampler, Trajectory

Target = Literal["dsb", "simplified", "term", "flow"]
TARGETS: tuple[str, ...] = ("dsb", "simplified", "term", "flow")
#: what a network trained on each target outputs (its `Predictor.predict`).
OUTPUT: dict[str, str] = {"dsb": "mean", "simplified": "mean", "term": "endpoint", "flow": "velocity"}
#: F(y, j): the mean map of a chain at its step j.
MeanMap = Callable[[Tensor, int], Tensor]


def next_mean(output_kind: str, output: Tensor, x: Tensor, tau0: Tensor | float, tau1: Tensor | float) -> Tensor:
    """The next-state mean from a network output, on the chain's own clock tau (0 at its start, 1 at its end).

    mean: the output is the mean. endpoint: move (tau1 - tau0) / (1 - tau0) of the way to the predicted
    end, i.e. x + (x_end - x) / (N - s) on the uniform grid. velocity: x + v (tau1 - tau0), i.e. x + v / N.
    Both reparameterisations are Euler steps of the bridge drift (x_end - x) / (1 - tau).
    """
    if output_kind == "mean":
        return output
    tau0 = torch.as_tensor(tau0, dtype=x.dtype, device=x.device)
    step = expand_t(torch.as_tensor(tau1, dtype=x.dtype, device=x.device) - tau0, x)
    if output_kind == "endpoint":
        return x + (output - x) * step / expand_t(1 - tau0, x)
    if output_kind == "velocity":
        return x + output * step
    raise ValueError(f"output kind must be mean, endpoint or velocity, got {output_kind!r}")


# ------------------------------------------------------------------------------------------------
# Epoch-0 reference chains (both start at the data side and head to the prior side)
# ------------------------------------------------------------------------------------------------


def flow_noiser(anchor: Tensor, steps: int) -> MeanMap:
    """`noiser: flow` (S-DSB): F_j(y) = a + (y - a) k / (k + 1) with k = N - 1 - j and a the independently
    drawn prior sample. Without noise the chain walks the straight line from its start to a, reaching a at
    j = N - 1: a noisy linear-interpolation bridge, so the first network learns flow matching."""

    def mean(y: Tensor, j: int) -> Tensor:
        k = steps - 1 - j
        return anchor + (y - anchor) * (k / (k + 1))

    return mean


def dsb_noiser(gammas: Tensor) -> MeanMap:
    """`noiser: dsb` (original DSB): F_j(y) = (1 - gamma_j) y, an OU chain towards N(0, I) that ignores the prior."""

    def mean(y: Tensor, j: int) -> Tensor:
        return (1 - float(gammas[j])) * y

    return mean


# ------------------------------------------------------------------------------------------------
# Simulation and training tuples
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class ChainPath:
    """A simulated chain.

    path: states y_0 .. y_N, shape (N + 1, B, *D).
    means: F_j(y_j), shape (N, B, *D) (the mean each step moved to before its noise).
    cross: F_j(y_{j+1}), shape (N, B, *D), for DSB mean matching; None otherwise.
    """

    path: Tensor
    means: Tensor
    cross: Tensor | None = None


@torch.no_grad()
def simulate(mean_fn: MeanMap, x: Tensor, gammas: Tensor, *, last_noise: bool = True, cross: bool = False) -> ChainPath:
    """Run x <- F_j(x) + sqrt(2 gamma_j) xi for j = 0 .. N-1 (noise from the global torch RNG).

    last_noise=False returns the mean of the last step (sampling and pictures); caches keep the noise on
    every step. cross=True also evaluates F_j at the state each step produced (DSB's target needs it).
    """
    path, means, crosses = [x], [], []
    for j in range(len(gammas)):
        m = mean_fn(x, j)
        noisy = last_noise or j < len(gammas) - 1
        x = m + (2 * float(gammas[j])) ** 0.5 * torch.randn_like(m) if noisy else m
        path.append(x)
        means.append(m)
        if cross:
            crosses.append(mean_fn(x, j))
    return ChainPath(torch.stack(path), torch.stack(means), torch.stack(crosses) if cross else None)


def training_tuples(target: str, chain: ChainPath, *, reference_compat: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs, targets, labels) for the network that reverses `chain`: inputs[j] = y_{j+1} at label
    s = N - 1 - j; shapes (N, B, *D), (N, B, *D) and (N,) (module docstring for the targets).

    reference_compat: divide the flow target by 1 - j / N instead of the remaining time (j + 1) / N, as the
    official code's OU noiser (`DSBNoiser.trajectory`, whose loop index runs forwards) does; the two agree
    only at j = (N - 1) / 2. The caller applies it to that chain alone (`SDSBConfig.reference_compat`)."""
    path = chain.path
    n = path.shape[0] - 1
    inputs = path[1:]
    labels = torch.arange(n - 1, -1, -1)
    if target == "simplified":
        targets = path[:-1]
    elif target == "dsb":
        if chain.cross is None:
            raise ValueError("target dsb needs the chain's cross means: simulate(..., cross=True)")
        targets = inputs + chain.means - chain.cross
    elif target == "term":
        targets = path[0].expand_as(inputs)
    elif target == "flow":
        j = torch.arange(n, dtype=path.dtype, device=path.device)
        left = 1 - j / n if reference_compat else (j + 1) / n
        targets = (path[0] - inputs) / left.reshape(-1, *[1] * (inputs.ndim - 1))
    else:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    return inputs, targets, labels


# ------------------------------------------------------------------------------------------------
# The chain as a core sampler
# ------------------------------------------------------------------------------------------------


def network_time(tau: Tensor, direction: str) -> Tensor:
    """The core's time t in [0, 1] (x0 at 0, x1 at 1) of a point at clock tau of a chain in `direction`."""
    return tau if direction == "forward" else 1 - tau


class ChainSampler(Sampler):
    """`sdsb_chain`: x <- m(x, s) + sqrt(2 gamma_s) xi along the grid, m from `next_mean` of the Predictor's
    output (`predict`: mean, endpoint or velocity). No noise on the last step unless `last_step_noise`.

    gamma is parsed for the grid's number of steps, so a coarser grid uses the schedule at that N, as the
    reference's `inference_timesteps` does (only endpoint/velocity networks can change N).
    """

    def __init__(self, steps: int = 16, gamma: str = "linear_1e-4_1e-3", last_step_noise: bool = False,
                 grid: Literal["uniform", "respaced"] = "uniform", grid_size: int | None = None) -> None:
        super().__init__(steps, grid, grid_size)
        parse_gamma(gamma, "sampler.gamma").values(steps, "sampler.gamma")
        self.gamma = gamma
        self.last_step_noise = last_step_noise

    def sample(self, model: Predictor, x_start: Tensor, grid: Tensor, *, callback: Any = None,
               return_path: bool = False, record: bool = False) -> Trajectory:
        if callback is not None:
            raise ValueError("sdsb_chain takes no callback")
        n = len(grid) - 1
        if model.predict == "mean" and n != self.steps:
            raise ValueError(f"a mean-predicting (dsb/simplified) network is tied to its {self.steps} steps, got {n}")
        gammas = parse_gamma(self.gamma, "sampler.gamma").values(n, "sampler.gamma")
        grid = grid.to(x_start)
        tau = grid if model.direction == "forward" else 1 - grid

        # the predicted end of each step, where the network has one (TR-DSB's endpoint, FR-DSB's velocity)
        ends: list[Tensor] | None = [] if record and model.predict != "mean" else None

        def mean(x: Tensor, k: int) -> Tensor:
            out = model(x, grid[k].expand(x.shape[0])).output
            if ends is not None:
                ends.append(out if model.predict == "endpoint" else x + out * expand_t(1 - tau[k], x))
            return next_mean(model.predict, out, x, tau[k], tau[k + 1])

        chain = simulate(mean, x_start, gammas, last_noise=self.last_step_noise)
        return Trajectory(chain.path[-1], chain.path if return_path else None, nfe=n,
                          predictions=torch.stack(ends) if ends is not None else None)
