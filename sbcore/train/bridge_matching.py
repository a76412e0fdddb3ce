"""Built-in method ``bm``: bridge matching with a Brownian-bridge reference and any coupling.

Given pairs (x0, x1) ~ coupling and t ~ U[eps, 1-eps], x_t is drawn from the Brownian bridge and a
forward network regresses the bridge's drift towards x1, a backward network the drift towards x0
(Shi et al. 2023, "Diffusion Schrödinger Bridge Matching", eq. (8); Peluchetti 2023). With the
independent coupling this is one Markovian projection of the reference mixture; with sigma = 0
and the forward direction alone it is flow matching / rectified flow (Liu et al. 2023).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from sbcore.config import CouplingSpec
from sbcore.data.base import PairedSource
from sbcore.evaluation import evaluate_translation
from sbcore.network.base import Network
from sbcore.process.base import Direction, ReferenceProcess
from sbcore.process.brownian import BrownianBridge
from sbcore.sampler.base import Trajectory
from sbcore.train.trainer import Trainer

#: module names of the drift networks ("forward" itself would clash with nn.Module.forward).
NETWORK_NAME = {"forward": "forward_drift", "backward": "backward_drift"}


def bridge_matching_loss(
    network: Network, process: ReferenceProcess, x0: Tensor, x1: Tensor, t: Tensor,
    direction: Direction, reduction: Literal["sum", "mean"] = "sum",
) -> Tensor:
    """E ||v_theta(x_t, t) - drift_target(x0, x1, x_t, t)||^2 for one direction.

    `reduction="sum"` sums over data dimensions and averages over the batch (the Gaussian
    benchmark's loss); "mean" averages over every element (common for images).
    """
    x_t = process.sample_bridge(x0, x1, t)
    target = process.drift_target(x0, x1, x_t, t, direction)
    err = (network(x_t, t) - target).float().pow(2)
    return err.mean() if reduction == "mean" else err.flatten(1).sum(1).mean()


@attrs.frozen
class BMConfig:
    sigma: float = attrs.field(default=1.0, validator=v.ge(0.0))
    coupling: CouplingSpec = attrs.field(factory=lambda: CouplingSpec("independent"))
    directions: tuple[Direction, ...] = ("forward", "backward")
    t_epsilon: float = attrs.field(default=1.0e-3, validator=[v.ge(0.0), v.lt(0.5)])
    loss_reduction: Literal["sum", "mean"] = "sum"

    def __attrs_post_init__(self) -> None:
        if not self.directions or len(set(self.directions)) != len(self.directions):
            raise ValueError(f"directions must be a non-empty subset of [forward, backward], got {self.directions}")


class BridgeMatching(Trainer):
    """Forward and/or backward drift networks trained by bridge matching on a fixed coupling."""

    Config = BMConfig

    def setup(self) -> None:
        registry, data = self.run.registry, self.run.config.data
        if data.pairs is not None:
            self.pairs: PairedSource | None = data.pairs.build(registry)
            self.sources = None
            shape = self.pairs.shape
        else:
            self.pairs = None
            self.sources = {"x0": data.x0.build(registry), "x1": data.x1.build(registry)}
            if self.sources["x0"].shape != self.sources["x1"].shape:
                raise ValueError(
                    f"data.x0 has shape {self.sources['x0'].shape} but data.x1 has {self.sources['x1'].shape}; "
                    "a bridge needs both sides in one space"
                )
            shape = self.sources["x0"].shape
        self.shape = tuple(shape)
        self.process = BrownianBridge(self.method.sigma)
        self.coupling = self.method.coupling.build(registry)
        if self.coupling.needs_pairs and self.pairs is None:
            raise ValueError(f"coupling {self.method.coupling.kind!r} needs paired data: set data.pairs")
        self.sampler = self.run.config.sampler.build(registry)
        self.directions = tuple(self.method.directions)
        for direction in self.directions:
            self.add_network(NETWORK_NAME[direction], self.run.config.network.build(registry, shape=self.shape))

    def draw(self, side: str, n: int, generator: torch.Generator) -> Tensor:
        if self.pairs is not None:
            x0, x1 = self.pairs.sample_pairs(n, generator)
            return x0 if side == "x0" else x1
        return self.sources[side].sample(n, generator)

    def draw_pairs(self, n: int) -> tuple[Tensor, Tensor]:
        if self.pairs is not None:
            x0, x1 = self.pairs.sample_pairs(n, self.data_generator)
        else:
            x0 = self.sources["x0"].sample(n, self.data_generator)
            x1 = self.sources["x1"].sample(n, self.data_generator)
        pair = self.coupling(x0.to(self.device), x1.to(self.device))
        return pair.x0, pair.x1

    def training_loss(self, batch_size: int) -> Tensor:
        x0, x1 = self.draw_pairs(batch_size)
        eps = self.method.t_epsilon
        t = eps + (1 - 2 * eps) * torch.rand(batch_size, device=self.device)
        return sum(
            bridge_matching_loss(self.networks[NETWORK_NAME[d]], self.process, x0, x1, t, d, self.method.loss_reduction)
            for d in self.directions
        )

    def sample(
        self, direction: Direction, x_start: Tensor, steps: int | None = None, return_path: bool = False
    ) -> Trajectory:
        if direction not in self.directions:
            raise ValueError(f"this run trained the directions {list(self.directions)}, not {direction!r}")
        sampler = self.sampler
        if steps is not None:
            sampler = copy.copy(sampler)
            sampler.steps = steps
        grid = self.process.time_grid(sampler.steps, direction, device=self.device)
        net = self.networks[NETWORK_NAME[direction]]
        return sampler.sample(lambda x, t: net(x, t), x_start.to(self.device), grid, self.process, return_path)

    def evaluate(self) -> dict[str, Any]:
        return evaluate_translation(self, sigma=self.method.sigma)
