"""The ``ddib`` method: one eps-prediction diffusion model of one domain (Su et al. 2023, Sec. 3).

DDIB trains a standard DDPM eps-predictor per domain, each alone on its own data, and translates by
encoding with the source model and decoding with the target model (`sb_ddib.translate`). A run here
is one such model: bridge matching on a deterministic path (the core's VP process, x1 = eps) from the
domain x0 to white noise x1, with ONE network serving both directions: on VP the eps target of the
forward (encode) and backward (decode) directions is the same noise, so the loss is DDPM's
||eps_theta(x_t, t) - eps||^2 (Ho et al. 2020, eq. (14); guided-diffusion `LossType.MSE`).

Times: on a discrete process (``vp`` with ``steps: T``) t is drawn uniformly from its T training times
i / (T - 1), as guided-diffusion draws the index i; on a continuous one, uniformly in [eps, 1 - eps].
``eps_skip`` adds b(t) x to the network's output (b = sqrt(1 - abar)): the exact eps of unit-variance
data at high noise, which keeps small CPU-trained models from blowing up there (spec §2.7; a
documented deviation from the reference's plain output).
``predict`` says what the network outputs, as diffusers' ``prediction_type`` does: eps, x0 or v =
sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022, Appendix D); the model converts it to eps with the
path's a = sqrt(abar), b = sqrt(1 - abar): eps = (x - a x0) / b, eps = a v + b x (a^2 + b^2 = 1 on VP).
A pretrained diffusers model (`sb_ddib.pretrained`) is a ddib model with its scheduler's prediction.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from sb_ddib.translate import cycle_stats
from sbcore.coupling.independent import IndependentCoupling
from sbcore.data.base import Source
from sbcore.metrics.translation import Evaluation, sample_in_chunks
from sbcore.network.base import Network
from sbcore.process.base import Direction, ReferenceProcess, expand_t
from sbcore.sampler.base import Predictor
from sbcore.sampler.guidance import null_label
from sbcore.train.bridge_matching import BridgeMatching, bridge_matching_loss

#: the module name of the single network.
NETWORK = "eps"


class Noise(Source):
    """White noise N(0, I) of a given per-sample shape: DDIB's latent side x1 (dataset ``noise``)."""

    fresh_draws = True

    def __init__(self, shape: list[int]) -> None:
        if not shape or min(shape) < 1:
            raise ValueError(f"shape: expected a list of positive sizes, e.g. [2] or [1, 32, 32], got {shape}")
        self.shape = tuple(int(s) for s in shape)

    def __repr__(self) -> str:
        return f"Noise(shape={list(self.shape)})"

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn((n, *self.shape), generator=generator)


@attrs.frozen
class DDIBConfig:
    """The `method:` section of `ddib`.

    eps_skip: add b(t) x to the network output (see the module docstring); only with predict: eps.
    predict: what the network outputs: eps, x0 or v (see the module docstring); the loss is on the eps it implies.
    t_epsilon: margin of the continuous time draw (unused on a discrete process).
    loss_reduction: mean over every element (guided-diffusion) or sum over dimensions.
    label_dropout: with a class-conditional network (network.num_classes), the fraction of training labels
        replaced by the null label, so one network also learns the unconditional model that
        classifier-free guidance contrasts with (Ho & Salimans 2022, Alg. 1; they use 0.1 to 0.2).
    """

    eps_skip: bool = True
    predict: Literal["eps", "x0", "v"] = "eps"
    t_epsilon: float = attrs.field(default=1.0e-3, validator=[v.ge(0.0), v.lt(0.5)])
    loss_reduction: Literal["sum", "mean"] = "mean"
    label_dropout: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.le(1.0)])

    def __attrs_post_init__(self) -> None:
        if self.eps_skip and self.predict != "eps":
            raise ValueError(f"eps_skip adds to an eps output; with predict: {self.predict} set eps_skip: false")


class EpsModel:
    """The network seen as an eps-predictor: its output converted from `predict`, with the optional skip b(t) x."""

    def __init__(self, network: Network, process: ReferenceProcess, skip: bool, predict: str = "eps") -> None:
        self.network, self.process, self.skip, self.predict = network, process, skip, predict

    def __call__(self, x: Tensor, t: Tensor, **cond: Tensor) -> Tensor:
        out = self.network(x, t, **cond)
        if not self.skip and self.predict == "eps":
            return out
        a, b, _ = self.process.coefficients(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        a, b = expand_t(a, x), expand_t(b, x)
        if self.predict == "x0":
            return (x - a * out) / b
        if self.predict == "v":
            return a * out + b * x
        return out + b * x


def check_deterministic(process: ReferenceProcess) -> None:
    """DDIM encodes and decodes along a path with c(t) = 0 (VP, or the sigma = 0 bridge)."""
    c = process.coefficients(torch.linspace(0.0, 1.0, 11, dtype=torch.float64))[2]
    if float(c.abs().max()) > 0:
        raise ValueError(f"process: ddib needs a deterministic path (c(t) = 0), e.g. {{kind: vp, steps: 4000}}; "
                         f"got {process!r}")


class DDIB(BridgeMatching):
    """One domain's diffusion model; `sample("forward")` encodes, `sample("backward")` decodes."""

    Config = DDIBConfig
    default_example = "moons.yaml"

    def open_data(self, data: Any) -> dict[str, Any]:
        """The domain (x0) and its latent: data.x1 when given, else white noise of the data's shape."""
        if data.pairs is not None:
            raise ValueError("data.pairs: ddib trains each domain's model alone; give data.x0 (the domain) only")
        x0 = self.open_source(data, "x0")
        x1 = self.open_source(data, "x1") if data.x1 is not None else Noise(list(x0.shape))
        if tuple(x1.shape) != tuple(x0.shape):
            raise ValueError(f"data.x1 has shape {tuple(x1.shape)} but data.x0 has {tuple(x0.shape)}; "
                             "the latent is noise of the data's shape")
        return {"pairs": None, "sources": {"x0": x0, "x1": x1}}

    def setup(self) -> None:
        registry = self.run.registry
        opened = self.open_data(self.run.config.data)
        self.pairs, self.sources = opened["pairs"], opened["sources"]
        self.shape = tuple(self.sources["x0"].shape)
        self.process = self.run.config.process.build(registry)
        check_deterministic(self.process)
        self.coupling = IndependentCoupling()
        if self.device.type == "cpu":  # denormals slow small CPU models ~10x late in training (spec §2.7)
            torch.set_flush_denormal(True)
        self.sampler = self.run.config.sampler.build(registry)
        self.directions = ("forward", "backward")
        network = self.add_network(NETWORK, self.run.config.network.build(registry, shape=self.shape))
        self.model = EpsModel(network, self.process, self.method.eps_skip, self.method.predict)
        self.num_classes = int(getattr(network, "num_classes", 0))
        if self.method.label_dropout > 0:
            null_label(network)  # refuses a network without a null label
        if self.num_classes and getattr(self.sources["x0"], "labels", None) is None:
            raise ValueError(f"network.num_classes: data.x0 ({self.sources['x0']!r}) has no class labels to train on "
                             "(labelled sources: mnist, fashion_mnist, emnist_letters)")

    def sample_t(self, n: int) -> Tensor:
        size = self.process.grid_size
        if size is None:
            return super().sample_t(n)
        return torch.randint(size, (n,), device=self.device).float() / (size - 1)

    def training_loss(self, batch_size: int) -> Tensor:
        if not self.num_classes:
            x0, x1 = self.draw_pairs(batch_size)
            label = None
        else:
            twin = torch.Generator().set_state(self.data_generator.get_state())
            label = self.sources["x0"].labels_of_draw(batch_size, twin)
            x0 = self.sources["x0"].sample(batch_size, self.data_generator)
            x1 = self.sources["x1"].sample(batch_size, self.data_generator)
            x0, x1, label = x0.to(self.device), x1.to(self.device), label.to(self.device)
            if label.min() < 0 or label.max() >= self.num_classes:
                raise ValueError(f"data.x0 has labels in [{int(label.min())}, {int(label.max())}] but "
                                 f"network.num_classes is {self.num_classes}")
            drop = torch.rand(batch_size, generator=self.data_generator) < self.method.label_dropout
            label = torch.where(drop.to(self.device), self.num_classes, label)
        return bridge_matching_loss(self.model, self.process, x0, x1, self.sample_t(batch_size), "backward",
                                    "eps", reduction=self.method.loss_reduction, label=label)

    def predictor(self, direction: Direction, network: Network | None = None, cond: Tensor | None = None) -> Predictor:
        model = self.model if network is None else EpsModel(network, self.process, self.method.eps_skip,
                                                            self.method.predict)
        return Predictor(model, self.process, direction, "eps", cond)

    def evaluate(self) -> Evaluation:
        """The core's evaluation plus the same-model round trip decode(encode(x)): DDIM's inversion error,
        the floor of any translation's cycle error (users report it as their first problem, spec §2.6)."""
        evaluation = super().evaluate()
        encoded = evaluation.translations.get("forward")
        if encoded is not None:
            back = sample_in_chunks(self, "backward", encoded.outputs.x, progress=False).x
            stats = cycle_stats(encoded.inputs, back)
            evaluation.metrics.update({f"reconstruction_l2_{k}": v for k, v in stats.items()})
        return evaluation
