"""Built-in method ``bm``: bridge matching on any reference process, prediction target and coupling.

Given pairs (x0, x1) ~ coupling and t ~ U[eps, 1-eps], x_t is drawn from the process's bridge and a
forward network regresses the target towards x1, a backward network the target towards x0 (Shi et
al. 2023, "Diffusion Schrödinger Bridge Matching", eq. (8); Peluchetti 2023). What the network
predicts (drift, endpoint, eps, velocity) is converted by the process, in training and sampling
alike. With the independent coupling this is one Markovian projection of the reference mixture;
with the sigma = 0 Brownian bridge and the forward direction alone it is flow matching / rectified
flow (Liu et al. 2023). Methods built on it (DSBM, I2SB, DDIB, ...) override `draw_pairs`, the
networks or the loss of a stage, and reuse sampling and evaluation.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from sbcore.config import CouplingSpec
from sbcore.data.base import PairedSource
from sbcore.metrics.translation import Evaluation, evaluate_translation
from sbcore.network.base import Network
from sbcore.process.base import Direction, ReferenceProcess, check_prediction, expand_t
from sbcore.sampler.base import Callback, Predictor, Trajectory
from sbcore.sampler.guidance import Guidance, guide, make_guidance
from sbcore.train.trainer import Trainer
from sbcore.train.weighting import Weighting, check_weighting, loss_weight

#: module names of the networks ("forward" itself would clash with nn.Module.forward).
NETWORK_NAME = {"forward": "forward_drift", "backward": "backward_drift"}


def bridge_matching_loss(
    network: Network, process: ReferenceProcess, x0: Tensor, x1: Tensor, t: Tensor, direction: Direction,
    predict: str = "drift", weighting: Weighting = "uniform", reduction: Literal["sum", "mean"] = "sum",
    cond: Tensor | None = None, label: Tensor | None = None,
) -> Tensor:
    """E lambda(t) ||f_theta(x_t, t) - target(x0, x1, x_t, t)||^2 for one direction.

    `reduction="sum"` sums over data dimensions and averages over the batch (the Gaussian
    benchmark's loss); "mean" averages over every element (common for images). `cond` and `label` go to
    the network as ``cond=`` and ``label=`` when given.
    """
    x_t = process.sample_bridge(x0, x1, t)
    target = process.target(predict, x0, x1, x_t, t, direction)
    inputs = ({} if cond is None else {"cond": cond}) | ({} if label is None else {"label": label})
    out = network(x_t, t, **inputs)
    err = (out - target).float().pow(2)
    weight = loss_weight(weighting, process, t, direction)
    if weight is not None:
        err = expand_t(weight.float(), err) * err
    return err.mean() if reduction == "mean" else err.flatten(1).sum(1).mean()


@attrs.frozen
class BMConfig:
    """The `method:` section of `bm`.

    predict: what the networks output (drift, endpoint, x0, x1, eps, velocity), converted by the process.
    loss_weight: uniform (DSBM eq. (10)) or bridge_variance (`sbcore.train.weighting`).
    """

    coupling: CouplingSpec = attrs.field(factory=lambda: CouplingSpec("independent"))
    directions: tuple[Direction, ...] = ("forward", "backward")
    predict: str = "drift"
    loss_weight: Weighting = "uniform"
    t_epsilon: float = attrs.field(default=1.0e-3, validator=[v.ge(0.0), v.lt(0.5)])
    loss_reduction: Literal["sum", "mean"] = "sum"

    def __attrs_post_init__(self) -> None:
        if not self.directions or len(set(self.directions)) != len(self.directions):
            raise ValueError(f"directions must be a non-empty subset of [forward, backward], got {self.directions}")
        check_prediction(self.predict, tuple(self.directions))


class BridgeMatching(Trainer):
    """Forward and/or backward networks trained by bridge matching on a fixed coupling."""

    Config = BMConfig
    default_example = "gaussian.yaml"

    def open_data(self, data: Any) -> dict[str, Any]:
        """``pairs`` (a PairedSource or None) and ``sources`` (side -> Source, or None) from `data`."""
        if data.pairs is not None:
            return {"pairs": self.open_source(data, "pairs"), "sources": None}
        if data.x1 is None:
            raise ValueError(f"method {self.run.config.plugin!r} needs data.x1 as well as data.x0 (or data.pairs)")
        sources = {"x0": self.open_source(data, "x0"), "x1": self.open_source(data, "x1")}
        if sources["x0"].shape != sources["x1"].shape:
            raise ValueError(
                f"data.x0 has shape {sources['x0'].shape} but data.x1 has {sources['x1'].shape}; "
                "a bridge needs both sides in one space"
            )
        return {"pairs": None, "sources": sources}

    def setup(self) -> None:
        registry = self.run.registry
        opened = self.open_data(self.run.config.data)
        self.pairs: PairedSource | None = opened["pairs"]
        self.sources = opened["sources"]
        shape = self.pairs.shape if self.pairs is not None else self.sources["x0"].shape
        self.shape = tuple(shape)
        self.process: ReferenceProcess = self.run.config.process.build(registry)
        check_weighting(self.method.loss_weight, self.process)
        self.coupling = self.method.coupling.build(registry)
        if self.coupling.needs_pairs and self.pairs is None:
            raise ValueError(f"coupling {self.method.coupling.kind!r} needs paired data: set data.pairs")
        self.sampler = self.run.config.sampler.build(registry)
        self.directions = tuple(self.method.directions)
        if self.sampler.needs_reverse and len(self.directions) < 2:
            raise ValueError(f"sampler {self.run.config.sampler.kind!r} integrates the forward and backward networks "
                             f"together; this run trains only {list(self.directions)}")
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

    def sample_t(self, n: int) -> Tensor:
        eps = self.method.t_epsilon
        return eps + (1 - 2 * eps) * torch.rand(n, device=self.device)

    def direction_loss(self, direction: Direction, x0: Tensor, x1: Tensor, t: Tensor,
                       network: Network | None = None) -> Tensor:
        """The bridge-matching loss of one direction with this method's prediction, weighting and reduction."""
        m = self.method
        return bridge_matching_loss(network or self.networks[NETWORK_NAME[direction]], self.process, x0, x1, t,
                                    direction, m.predict, m.loss_weight, m.loss_reduction)

    def training_loss(self, batch_size: int) -> Tensor:
        x0, x1 = self.draw_pairs(batch_size)
        t = self.sample_t(batch_size)
        return sum(self.direction_loss(d, x0, x1, t) for d in self.directions)

    def predictor(self, direction: Direction, network: Network | None = None, cond: Tensor | None = None) -> Predictor:
        """The network of `direction` (or `network`, e.g. a frozen teacher) seen through the process; with the
        run's own networks and both directions trained, the other one rides along as `reverse`
        (for the probability-flow ODE)."""
        reverse = None
        if network is None:
            if direction not in self.directions:
                raise ValueError(f"this run trained the directions {list(self.directions)}, not {direction!r}")
            network = self.networks[NETWORK_NAME[direction]]
            other = "backward" if direction == "forward" else "forward"
            if other in self.directions:
                reverse = Predictor(self.networks[NETWORK_NAME[other]], self.process, other, self.method.predict, cond)
        return Predictor(network, self.process, direction, self.method.predict, cond, reverse=reverse)

    def sample(
        self, direction: Direction, x_start: Tensor, steps: int | None = None, return_path: bool = False,
        record: bool = False, cond: Tensor | None = None, callback: Callback | None = None,
        guidance: Guidance | dict[str, Any] | None = None, label: int | None = None,
    ) -> Trajectory:
        """Integrate `direction` from x_start; `guidance` (or `label` and the options of `make_guidance`, as
        ``sbcore sample label=K guidance.scale=S`` gives them) conditions on a class, optionally guided
        (`sbcore.sampler.guidance`)."""
        grid = self.sampler.time_grid(self.process, direction, steps, device=self.device)
        cond = cond.to(self.device) if cond is not None else None
        predictor = self.predictor(direction, cond=cond)
        if not isinstance(guidance, Guidance):
            guidance = make_guidance(label, guidance, self.run.registry, self.device)
        if guidance is not None:
            predictor = guide(predictor, guidance)
        return self.sampler.sample(predictor, x_start.to(self.device), grid,
                                   callback=callback, return_path=return_path, record=record)

    def evaluate(self) -> Evaluation:
        return evaluate_translation(self)
