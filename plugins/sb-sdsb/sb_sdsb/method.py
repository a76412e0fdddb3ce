"""The `sdsb` method: discrete-time IPF on cached chains (Tang et al. 2024, "Simplified Diffusion Schrödinger
Bridge"; De Bortoli et al. 2021, "Diffusion Schrödinger Bridge", Alg. 1), on the core's alternating service.

Two networks, named by the sides they map: `x0_to_x1` and `x1_to_x0`. `prior` names the side the paper's G
(prior -> data) starts from: with the default `prior: x0`, epoch e trains x0_to_x1 when e is even and
x1_to_x0 when e is odd; `prior: x1` mirrors it (x1_to_x0 first), so a translation recipe keeps its sides in
the order every other method reads them and still picks which direction S-DSB learns first. Each epoch
trains on the time reversal of chains simulated by the other network (the core's frozen EMA teacher) from
real samples of its start side. Epoch 0 reverses the reference chain started at data-side samples:
`noiser: flow`, a noisy straight-line bridge to an independent prior sample (so the first network learns
flow matching), or `noiser: dsb`, DSB's OU chain; its chains cost no network evaluation and are drawn fresh
every step.
What the networks regress is `simplify`/`reparam` (`sb_sdsb.chain`):

    DSB     simplify: false                mean matching, eq. (12) of De Bortoli et al.
    S-DSB   simplify: true                 the previous state of the chain
    TR-DSB  simplify: true, reparam: term  the chain's start (the trained network's end point)
    FR-DSB  simplify: true, reparam: flow  the velocity towards it

Every step of the teacher's chains is one cache row (input, target, label): the core's `SimulationCache`
holds `cache_size` of them, rebuilt every `refresh_every` steps, and draws each batch uniformly (the
reference instead reads one shuffled pass). AdamW keeps its state across epochs (warm start, as the
reference); `train.ema_decay: 0` is the reference's no-EMA setting.

Initialisation from a pretrained model (Tang et al. 2024, Sec. 4.4) replaces epoch 0: `train.init_from` loads
the prior -> data network and training starts with the other one on its chains. ``network_output`` says what
that network outputs: its target's own quantity (native), a flow-matching velocity (velocity: a `bm` run with
process sigma 0 and ``predict: velocity``), or a VP diffusion model's eps (vp_eps: a `ddib` run, with the
run's `process: {kind: vp, ...}` and ``eps_skip``); `sb_sdsb.init` converts either, in closed form, to the
endpoint (TR-DSB) or next mean (S-DSB, DSB) the target asks for, in the loss and in the chains, so the loaded
network keeps training as that S-DSB variant.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs
import torch
from attrs import validators as v
from torch import Tensor, nn

from sb_sdsb.chain import OUTPUT, ChainPath, dsb_noiser, flow_noiser, network_time, next_mean, simulate, training_tuples
from sb_sdsb.gamma import parse_gamma
from sb_sdsb.init import VelocityFromEps, from_velocity
from sbcore.config import CouplingSpec, SamplerSpec
from sbcore.io import checkpoint as ckpt
from sbcore.io import plots
from sbcore.metrics.translation import Evaluation
from sbcore.network.base import Network
from sbcore.process.base import ENDS, Direction
from sbcore.process.vp import VPDiffusion
from sbcore.sampler.base import Predictor
from sbcore.train.alternating import AlternatingBridgeMatching, Schedule, Stage
from sbcore.train.bridge_matching import NETWORK_NAME
from sbcore.train.init_from import checkpoint_of

#: direction -> network name (the sides it maps, not forward/backward).
NETWORK: dict[str, str] = {"forward": "x0_to_x1", "backward": "x1_to_x0"}
OTHER: dict[str, Direction] = {"forward": "backward", "backward": "forward"}


@attrs.frozen
class SDSBConfig:
    """The `method:` section of `sdsb`.

    simplify: regress the previous state (S-DSB) instead of DSB's mean-matching target.
    reparam: null, term (predict the end point, TR-DSB) or flow (predict the velocity, FR-DSB); needs simplify.
    prior: the side epoch 0 starts from (the paper's prior): x0 (x0_to_x1 trains first) or x1 (x1_to_x0 first).
    noiser: the epoch-0 reference chain: flow (noisy straight-line bridge to an independent prior sample) or dsb
        (OU).
    gamma: per-step noise schedule, sqrt(2 gamma_k) xi (`sb_sdsb.gamma`: linear, linear_MIN_MAX, constant,
        constant_VALUE).
    training_timesteps: N, the chain's steps in training (networks see the step as t = s / N).
    inference_timesteps: steps when sampling; only term/flow networks may differ from N.
    epochs: number of epochs (even ones train the prior -> data network, odd ones the other); they set
        train.steps.
    steps_per_epoch: optimisation steps per epoch.
    cache_size: chain steps (rows) held by the cache, a multiple of N; 0 simulates every batch afresh.
    refresh_every: optimisation steps between cache rebuilds.
    cache_chunk: rows simulated at once while rebuilding (a multiple of N).
    skip_first_epoch: epoch 0 is done already (set when train.init_from names a flow-matching run).
    reference_compat: reproduce the official code's FR-DSB target on the epoch-0 OU chain (noiser: dsb,
        reparam: flow), which divides by 1 - j/N instead of the remaining time (j + 1)/N (README); off by default.
    network_output: what x0_to_x1 outputs: native (its target's quantity), velocity (a flow-matching velocity)
        or vp_eps (a VP diffusion model's eps, read through the `process:` section, which must then be the
        pretrained run's vp process); converted to the target by `sb_sdsb.init` (module docstring).
    eps_skip: with vp_eps, the eps-model adds b(t) y to its output (a `ddib` run's `method.eps_skip`).
    """

    simplify: bool = True
    prior: Literal["x0", "x1"] = "x0"
    reparam: Literal["term", "flow"] | None = None
    noiser: Literal["flow", "dsb"] = "flow"
    gamma: str = "linear_1e-4_1e-3"
    training_timesteps: int = attrs.field(default=16, validator=v.ge(1))
    inference_timesteps: int = attrs.field(default=16, validator=v.ge(1))
    epochs: int = attrs.field(default=41, validator=v.ge(1))
    steps_per_epoch: int = attrs.field(default=8192, validator=v.ge(1))
    cache_size: int = attrs.field(default=1_048_576, validator=v.ge(0))  # refresh_every x the default batch
    refresh_every: int = attrs.field(default=4096, validator=v.ge(1))
    cache_chunk: int = attrs.field(default=65_536, validator=v.ge(1))
    skip_first_epoch: bool = False
    reference_compat: bool = False
    network_output: Literal["native", "velocity", "vp_eps"] = "native"
    eps_skip: bool = True

    def __attrs_post_init__(self) -> None:
        schedule = parse_gamma(self.gamma, "method.gamma")
        schedule.values(self.training_timesteps, "method.gamma (training_timesteps)")
        schedule.values(self.inference_timesteps, "method.gamma (inference_timesteps)")
        n = self.training_timesteps
        if self.reparam is not None and not self.simplify:
            raise ValueError(f"reparam: {self.reparam} reparameterises the simplified target: set simplify: true")
        if OUTPUT[self.target] == "mean" and self.inference_timesteps != n:
            raise ValueError(f"the {self.target} target predicts the next mean of a {n}-step chain: "
                             f"inference_timesteps must equal training_timesteps, got {self.inference_timesteps} "
                             "(reparam: term or flow can change it)")
        for key in ("cache_size", "cache_chunk"):
            if getattr(self, key) % n:
                raise ValueError(f"{key} counts chain steps: it must be a multiple of training_timesteps ({n}), "
                                 f"got {getattr(self, key)}")
        if self.prior == "x1" and self.network_output != "native":
            raise ValueError(f"network_output: {self.network_output} converts a pretrained x0_to_x1 (prior x0 -> "
                             "data): set prior: x0 and put the pretrained model's prior side in data.x0")
        if self.skip_first_epoch and self.epochs < 2:
            raise ValueError("skip_first_epoch leaves no epoch to train: set epochs >= 2")

    @property
    def target(self) -> str:
        return self.reparam or ("simplified" if self.simplify else "dsb")

    # ---- what the core's alternating service reads ------------------------------------------

    @property
    def first_direction(self) -> Direction:
        """The direction of the prior -> data network, the one epoch 0 trains."""
        return "forward" if self.prior == "x0" else "backward"

    @property
    def schedule(self) -> Schedule:
        skip = int(self.skip_first_epoch)
        lead = self.first_direction
        order: tuple[Direction, ...] = (OTHER[lead], lead) if skip else (lead, OTHER[lead])
        return Schedule(order, self.steps_per_epoch, self.epochs - skip)

    @property
    def directions(self) -> tuple[Direction, ...]:
        return ("forward", "backward")

    @property
    def predict(self) -> str:
        return OUTPUT[self.target]

    coupling = CouplingSpec("independent")  # unused: epoch 0 draws its own pairs
    loss_weight = "uniform"
    cache_steps = None
    reset_optimizer = False


class SDSB(AlternatingBridgeMatching):
    """Alternating discrete-time IPF with whole-trajectory caches (module docstring)."""

    Config = SDSBConfig
    default_example = "pinwheel_checkerboard_sdsb.yaml"
    stage_keys = ("epochs", "steps_per_epoch", False)

    @classmethod
    def resolve_config(cls, config: Any) -> Any:
        """Epochs set train.steps; the sampler is the method's chain at inference_timesteps; train.init_from
        skips epoch 0."""
        m = config.method
        if getattr(config.train, "init_from", None) and not m.skip_first_epoch:
            m = attrs.evolve(m, skip_first_epoch=True)
        sampler = SamplerSpec("sdsb_chain", {"steps": m.inference_timesteps, "gamma": m.gamma,
                                             "last_step_noise": False})
        return super().resolve_config(attrs.evolve(config, method=m, sampler=sampler))

    def setup(self) -> None:
        if self.run.config.data.pairs is not None:
            raise ValueError("sdsb bridges two unpaired sides: give data.x0 (the prior) and data.x1, not data.pairs")
        super().setup()
        m = self.method
        self.networks = nn.ModuleDict({NETWORK[d]: self.networks[NETWORK_NAME[d]] for d in self.directions})
        for net in self.networks.values():
            steps = getattr(net, "steps", m.training_timesteps)
            if steps != m.training_timesteps:
                raise ValueError(f"network.steps ({steps}) must equal method.training_timesteps "
                                 f"({m.training_timesteps}): the network embeds the chain's integer step")
        self.gammas = parse_gamma(m.gamma).values(m.training_timesteps)
        if self.cfg.init_from is not None:
            self.check_init_source(self.cfg.init_from)
        if m.network_output == "vp_eps" and not isinstance(self.process, VPDiffusion):
            raise ValueError(f"method.network_output: vp_eps reads x0_to_x1 as a VP diffusion model: set the process "
                             f"section to the pretrained run's, e.g. process: {{kind: vp, steps: 4000}}; got "
                             f"{self.run.config.process.kind!r}")

    def check_init_source(self, source: str) -> None:
        """Refuse a pretrained run whose output this run would misread: an FM velocity or a VP eps loaded as a
        network of another output without `network_output` saying so."""
        config = ckpt.read_metadata(checkpoint_of(source)).get("config", {})
        section = config.get("method") or {}
        plugin, predict = config.get("plugin"), section.get("predict")
        m = self.method
        if plugin == "ddib" and (predict not in (None, "eps") or section.get("eps_skip", True) != m.eps_skip):
            raise ValueError(f"train.init_from: {source} is a ddib run with predict: {predict or 'eps'}, eps_skip: "
                             f"{section.get('eps_skip', True)}; network_output: vp_eps reads an eps model: set "
                             f"method.eps_skip: {section.get('eps_skip', True)} (predict must be eps)")
        needed = ("velocity" if plugin == "bm" and predict == "velocity" and m.predict != "velocity" else
                  "vp_eps" if plugin == "ddib" else None)
        if needed is not None and m.network_output != needed:
            raise ValueError(f"train.init_from: {source} is a {plugin} run predicting {predict or 'eps'}; this run's "
                             f"x0_to_x1 ({m.target} target) reads it with method.network_output: {needed}")

    # ---- the alternating service's hooks -------------------------------------------------------

    def network_name(self, direction: Direction) -> str:
        return NETWORK[direction]

    def epoch(self, stage: Stage) -> int:
        return stage.index + int(self.method.skip_first_epoch)

    def uses_teacher(self, stage: Stage) -> bool:
        return self.epoch(stage) > 0

    def teacher_direction(self, stage: Stage) -> Direction:
        return OTHER[stage.direction]

    def converted(self, direction: Direction) -> bool:
        """Whether `direction`'s network outputs a velocity converted to the target (`network_output`)."""
        return direction == "forward" and self.method.network_output != "native"

    def output_kind(self, direction: Direction) -> str:
        """What `model(direction)` returns: a velocity for a converted network, else the target's quantity."""
        return "velocity" if self.converted(direction) else self.method.predict

    def model(self, direction: Direction, network: Network | None = None) -> Network | VelocityFromEps:
        """`direction`'s network (or `network`, a frozen teacher) as called by the chain: (x, t) -> output."""
        network = network or self.networks[NETWORK[direction]]
        if direction == "forward" and self.method.network_output == "vp_eps":
            return VelocityFromEps(network, self.process, self.method.eps_skip)
        return network

    def predictor(self, direction: Direction, network: Network | None = None, cond: Tensor | None = None) -> Predictor:
        return Predictor(self.model(direction, network), self.process, direction, self.output_kind(direction), cond)

    def simulate(self, direction: Direction, x_start: Tensor) -> dict[str, Tensor]:
        """len(x_start) rows: every step of chains of the teacher (moving in `direction`) from x_start."""
        assert self.teacher is not None
        steps, teacher, kind = self.method.training_timesteps, self.model(direction, self.teacher), \
            self.output_kind(direction)
        start = x_start[: math.ceil(x_start.shape[0] / steps)]

        def mean(y: Tensor, j: int) -> Tensor:
            t = network_time(torch.full((y.shape[0],), j / steps, device=y.device), direction)
            return next_mean(kind, teacher(y, t), y, j / steps, (j + 1) / steps)

        return self.rows(simulate(mean, start, self.gammas, cross=self.method.target == "dsb"), x_start.shape[0])

    def reference_rows(self, n: int) -> dict[str, Tensor]:
        """n rows of the epoch-0 reference chain, started at data-side samples (the side that is not the prior)."""
        m, chains = self.method, math.ceil(n / self.method.training_timesteps)
        prior, data_side = ENDS[m.first_direction]
        start = self.draw(data_side, chains, self.data_generator).to(self.device)
        mean = (flow_noiser(self.draw(prior, chains, self.data_generator).to(self.device), m.training_timesteps)
                if m.noiser == "flow" else dsb_noiser(self.gammas))
        chain = simulate(mean, start, self.gammas, cross=m.target == "dsb")
        return self.rows(chain, n, reference_compat=m.reference_compat and m.noiser == "dsb")

    def rows(self, chain: ChainPath, n: int, reference_compat: bool = False) -> dict[str, Tensor]:
        """The first n training tuples of `chain`, chain by chain: x, target (n, *D) and label (n,)."""
        # (N, B, *D), (N, B, *D), (N,)
        x, target, labels = training_tuples(self.method.target, chain, reference_compat=reference_compat)
        return {"x": x.transpose(0, 1).flatten(0, 1)[:n], "target": target.transpose(0, 1).flatten(0, 1)[:n],
                "label": labels.to(x.device).repeat(x.shape[1])[:n]}

    def stage_loss(self, stage: Stage, batch_size: int) -> Tensor:
        """Mean squared error of the trained network on n chain steps (the reference's MSELoss)."""
        rows = self.teacher_rows(batch_size) if self.teacher is not None else self.reference_rows(batch_size)
        x, n = rows["x"], self.method.training_timesteps
        tau = rows["label"].to(x.dtype) / n
        out = self.model(stage.direction)(x, network_time(tau, stage.direction))
        if self.converted(stage.direction):
            out = from_velocity(self.method.predict, out, x, tau, tau + 1 / n)
        return (out.float() - rows["target"].float()).pow(2).mean()

    def evaluate(self) -> Evaluation:
        evaluation = super().evaluate()
        if self.run.is_main:
            evaluation.metrics["epoch"] = self.epoch(self.schedule.stage_at(max(self.step - 1, 0)))
            if self.cache is not None and self.cache.rows is not None and self.shape == (2,):
                self.draw_cache()
        return evaluation

    def draw_cache(self) -> None:
        """The cached chains (states y_1 .. y_N of the teacher's first chains) over their two end clouds."""
        chains = self.cache.rows["x"].view(-1, self.method.training_timesteps, 2).transpose(0, 1).cpu()
        stage = self.schedule.stage_at(max(self.step - 1, 0))
        folder = self.run.dir / "pictures"
        folder.mkdir(exist_ok=True)
        plots.trajectories_2d(folder / f"cache_step{self.step:06d}.png", chains,
                              title=f"cached chains of {NETWORK[OTHER[stage.direction]]}, epoch {self.epoch(stage)}")
