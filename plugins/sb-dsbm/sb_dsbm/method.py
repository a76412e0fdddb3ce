"""Diffusion Schrödinger Bridge Matching (Shi, De Bortoli, Campbell, Doucet, NeurIPS 2023) and its baselines.

DSBM is bridge matching applied over and over with alternating directions (Alg. 1). Half-iteration n
trains one drift network by bridge matching (the Markovian projection, eq. (8)) on endpoint pairs
produced by simulating the network of half-iteration n - 1 from real data (the reciprocal projection:
only endpoints are kept and the Brownian bridge refills the path). One method, `dsbm`, covers:

* ``imf``   DSBM-IMF: the first coupling is independent, pi_0 x pi_1 (iteration 1 = bridge matching);
* ``ipf``   DSBM-IPF: the first coupling is the reference Q_01 started at the data of the first
            network's target side, which reproduces the IPF / DSB iterates (Prop. 10);
* ``bm``    bridge matching alone: every half-iteration trains on the independent coupling;
* ``rf``    rectified flow with reflow (Liu et al. 2023): sigma = 0, later couplings come from the
            previous network's ODE (`fb_sequence: [backward]` as in DSBM's Gaussian script);
* ``sbcfm`` SB-CFM / [SF]²M (Tong et al. 2024): every batch is re-paired by a minibatch Sinkhorn plan
            at reg 2 sigma^2 (the static SB of the minibatch); the drift is learned by bridge
            matching, i.e. the SDE form u_t + sigma^2/2 grad log p_t of SB-CFM's flow and score.

The stage (which network trains, on which coupling) is a function of the global step (`Schedule`),
and the coupling cache, the frozen teacher network and their generators are method state, so a
resumed run continues exactly.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from sb_dsbm.metrics import path_metrics
from sb_dsbm.schedule import Schedule, Stage
from sbcore.train.bridge_matching import NETWORK_NAME, BridgeMatching, bridge_matching_loss
from sbcore.config import CouplingSpec
from sbcore.coupling.base import Coupling, Pair
from sbcore.coupling.model import ModelCoupling
from sbcore.evaluation import START, evaluate_translation, gaussian_sb
from sbcore.network.base import Network
from sbcore.process.base import Direction, ReferenceProcess, expand_t
from sbcore.run import Run

Variant = Literal["imf", "ipf", "bm", "rf", "sbcfm"]
#: variants whose later half-iterations train on pairs simulated by the previous network.
ITERATIVE = ("imf", "ipf", "rf")


# ------------------------------------------------------------------------------------------------
# Loss
# ------------------------------------------------------------------------------------------------


def loss_weight(t: Tensor, direction: Direction, sigma: float) -> Tensor:
    """lambda(t) = sigma^2 (1 - t) for the forward net, sigma^2 t for the backward net.

    This is the weighting of DSBM's image code (`loss_scale`): the bridge target's noise has variance
    sigma^2 t / (1 - t) (forward), which blows up at t -> 1; the weight makes the weighted noise O(1).
    The minimiser at each t is unchanged, only the emphasis across t (the paper's eq. (10) is uniform).
    """
    return sigma**2 * ((1 - t) if direction == "forward" else t)


def dsbm_loss(
    network: Network, process: ReferenceProcess, x0: Tensor, x1: Tensor, t: Tensor, direction: Direction,
    weighting: Literal["uniform", "bridge_variance"] = "uniform", reduction: Literal["sum", "mean"] = "sum",
) -> Tensor:
    """Bridge-matching loss of one direction, optionally time-weighted (see `loss_weight`)."""
    if weighting == "uniform":
        return bridge_matching_loss(network, process, x0, x1, t, direction, reduction)
    x_t = process.sample_bridge(x0, x1, t)
    target = process.drift_target(x0, x1, x_t, t, direction)
    weight = expand_t(loss_weight(t, direction, process.sigma), x_t).float()
    err = weight * (network(x_t, t) - target).float().pow(2)
    return err.mean() if reduction == "mean" else err.flatten(1).sum(1).mean()


# ------------------------------------------------------------------------------------------------
# The reference coupling (DSBM-IPF's first coupling)
# ------------------------------------------------------------------------------------------------


class ReferenceCoupling(Coupling):
    """Pairs of the reference dX = sigma dW started at data: anchor "x0" gives (x0, x0 + sigma xi), "x1" gives
    (x1 + sigma xi, x1).

    DSBM-IPF starts from Q_01 (Shi et al. 2023, Sec. 4): the first backward network then learns the time
    reversal of Q started at pi_0, a denoising-diffusion-like model, and DSBM reproduces the IPF iterates
    (Prop. 10). Anchoring at x1 is the mirror image, for a schedule that starts with the forward network.
    """

    def __init__(self, sigma: float = 1.0, anchor: Literal["x0", "x1"] = "x0") -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0 for a reference coupling, got {sigma}")
        if anchor not in ("x0", "x1"):
            raise ValueError(f"anchor must be 'x0' or 'x1', got {anchor!r}")
        self.sigma = float(sigma)
        self.anchor = anchor

    def __repr__(self) -> str:
        return f"ReferenceCoupling(sigma={self.sigma}, anchor={self.anchor!r})"

    def __call__(self, x0: Tensor | None = None, x1: Tensor | None = None) -> Pair:
        data = x0 if self.anchor == "x0" else x1
        if data is None:
            raise ValueError(f"ReferenceCoupling(anchor={self.anchor!r}) needs the {self.anchor} batch, got None")
        moved = data + self.sigma * torch.randn_like(data)
        return Pair(data, moved) if self.anchor == "x0" else Pair(moved, data)


# ------------------------------------------------------------------------------------------------
# The method
# ------------------------------------------------------------------------------------------------


def _directions(value: Any) -> tuple[Direction, ...]:
    return tuple(value)


@attrs.frozen
class DSBMConfig:
    """The `method:` section of `dsbm`.

    variant: imf | ipf | bm | rf | sbcfm (module docstring).
    sigma: reference dX = sigma dW; rf needs 0 (the straight interpolant).
    fb_sequence: directions of successive half-iterations, repeated (DSBM: [backward, forward]).
    inner_iters: optimisation steps per half-iteration.
    outer_iters: number of half-iterations; it sets train.steps. null: as many as train.steps allows.
    first_inner_iters: steps of the first `first_stages` half-iterations (IMF's `first_num_iter`).
    first_stages: leading half-iterations on the first coupling: 1 as DSBM's Gaussian script; 2 with imf
        trains both directions on independent pairs first, as DSBM's image trainer does.
    cache_size: endpoint pairs held in the cache (0: simulate every training batch afresh).
    refresh_every: optimisation steps between cache rebuilds (with the frozen previous network).
    cache_steps: Euler-Maruyama steps for the cache; null uses the sampler's steps.
    cache_chunk: start samples simulated at once while rebuilding the cache.
    reset_optimizer: clear the optimiser state of the network at the start of each of its half-iterations
        (DSBM's Gaussian script builds a fresh Adam per half-iteration; the image trainer keeps it).
    loss_weight: uniform (the paper's eq. (10), Gaussian script) or bridge_variance (image code,
        sigma^2 (1 - t) forward, sigma^2 t backward).
    loss_reduction: sum over data dimensions (Gaussian script) or mean over elements (images).
    t_epsilon: t ~ U[eps, 1 - eps].
    sinkhorn_reg: Sinkhorn regulariser of sbcfm on the cost ||x0 - x1||^2; null means 2 sigma^2.
    """

    variant: Variant = "imf"
    sigma: float = attrs.field(default=1.0, validator=v.ge(0.0))
    fb_sequence: tuple[Direction, ...] = attrs.field(default=("backward", "forward"), converter=_directions)
    inner_iters: int = attrs.field(default=10_000, validator=v.ge(1))
    outer_iters: int | None = 40
    first_inner_iters: int | None = None
    first_stages: int = attrs.field(default=1, validator=v.ge(1))
    cache_size: int = attrs.field(default=10_000, validator=v.ge(0))
    refresh_every: int = attrs.field(default=1000, validator=v.ge(1))
    cache_steps: int | None = None
    cache_chunk: int = attrs.field(default=2500, validator=v.ge(1))
    reset_optimizer: bool = False
    loss_weight: Literal["uniform", "bridge_variance"] = "uniform"
    loss_reduction: Literal["sum", "mean"] = "sum"
    t_epsilon: float = attrs.field(default=1.0e-3, validator=[v.ge(0.0), v.lt(0.5)])
    sinkhorn_reg: float | None = None

    def __attrs_post_init__(self) -> None:
        Schedule(self.fb_sequence, self.inner_iters, self.outer_iters, self.first_inner_iters, self.first_stages)
        if self.variant == "rf" and self.sigma != 0:
            raise ValueError(f"variant rf is the sigma = 0 bridge (rectified flow): set sigma: 0, got {self.sigma}")
        if self.variant in ("ipf", "sbcfm") and self.sigma == 0 and self.sinkhorn_reg is None:
            raise ValueError(f"variant {self.variant} needs sigma > 0")
        if self.variant == "ipf" and self.first_stages != 1:
            raise ValueError("variant ipf trains only its first half-iteration on the reference coupling: "
                             "first_stages: 1")
        if self.loss_weight == "bridge_variance" and self.sigma == 0:
            raise ValueError("loss_weight bridge_variance is sigma^2 (1 - t) / sigma^2 t, zero at sigma = 0: "
                             "use uniform")
        if self.sinkhorn_reg is not None and not self.sinkhorn_reg > 0:
            raise ValueError(f"sinkhorn_reg must be > 0 or null, got {self.sinkhorn_reg}")
        if self.cache_steps is not None and self.cache_steps < 1:
            raise ValueError(f"cache_steps must be >= 1 or null, got {self.cache_steps}")

    # What the core's bridge matching reads (`BridgeMatching.setup`): the first coupling and the networks.
    @property
    def coupling(self) -> CouplingSpec:
        if self.variant == "sbcfm":
            return CouplingSpec("sinkhorn", {"reg": self.sinkhorn_reg or 2 * self.sigma**2})
        return CouplingSpec("independent")

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(dict.fromkeys(self.fb_sequence))

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.fb_sequence, self.inner_iters, self.outer_iters, self.first_inner_iters, self.first_stages)


#: path-metric keys that `evaluate_translation` already reports (as mean_error, var_error,
#: cov_x0_x1_diag and closed_form/cov_x0_x1_diag); the bench keeps them, the run log need not repeat them.
REPORTED_BY_CORE = frozenset({"mean_error", "var_error", "cov_diag", "cov_diag_closed_form"})


class DSBM(BridgeMatching):
    """Alternating bridge matching on couplings refreshed by the previous half-iteration's EMA network."""

    Config = DSBMConfig

    @classmethod
    def resolve_config(cls, config: Any) -> Any:
        """`outer_iters` half-iterations fix the number of steps: they replace `train.steps`."""
        total = config.method.schedule.total_steps
        if total is None or total == config.train.steps:
            return config
        return attrs.evolve(config, train=attrs.evolve(config.train, steps=total))

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.schedule = self.method.schedule
        self.stage: Stage | None = None
        #: frozen EMA copy of the network that makes the current stage's pairs (None on first stages).
        self.teacher: Network | None = None
        self.model_coupling: ModelCoupling | None = None

    # ---- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        first = self.schedule.stage(0).direction
        # IPF's first network learns to undo Q started at the data of its own target side.
        self.reference = (ReferenceCoupling(self.method.sigma, anchor="x0" if first == "backward" else "x1")
                          if self.method.variant == "ipf" else None)

    # ---- stages ------------------------------------------------------------------------------

    def uses_model_coupling(self, stage: Stage) -> bool:
        return self.method.variant in ITERATIVE and not stage.first

    def teacher_direction(self, stage: Stage) -> Direction:
        return self.schedule.stage(stage.index - 1).direction

    def enter_stage(self, stage: Stage) -> None:
        """Start a half-iteration: freeze the previous network (EMA weights) and make its coupling."""
        self.stage = stage
        active = NETWORK_NAME[stage.direction]
        self.ema.active = active
        if self.method.reset_optimizer and stage.index > 0:
            for p in self.networks[active].parameters():
                self.optimizer.state.pop(p, None)
        if not self.uses_model_coupling(stage):
            self.teacher = self.model_coupling = None
            return
        name = NETWORK_NAME[self.teacher_direction(stage)]
        self.teacher = self._frozen_copy(name, {k[len(name) + 1 :]: p for k, p in self.ema.shadow.items()
                                                if k.startswith(name + ".")})
        self.model_coupling = self._make_model_coupling(stage)

    def _frozen_copy(self, name: str, params: dict[str, Tensor]) -> Network:
        net = copy.deepcopy(self.networks[name])
        net.load_state_dict(params, strict=False)
        return net.eval().requires_grad_(False)

    def _make_model_coupling(self, stage: Stage) -> ModelCoupling:
        direction, teacher, m = self.teacher_direction(stage), self.teacher, self.method
        sampler = copy.copy(self.sampler)
        if m.cache_steps is not None:
            sampler.steps = m.cache_steps
        grid = self.process.time_grid(sampler.steps, direction, device=self.device)
        start_side = START[direction]
        generator = torch.Generator().manual_seed(self.run.config.seed * 100_003 + stage.index)
        return ModelCoupling(
            simulate=lambda x: sampler.sample(lambda y, t: teacher(y, t), x, grid, self.process).x,
            direction=direction,
            cache_size=m.cache_size,
            refresh_every=m.refresh_every * self.plan.per_rank_accum,  # coupling calls per step on this rank
            draw_start=lambda n: self.draw(start_side, n, self.data_generator).to(self.device),
            chunk_size=m.cache_chunk,
            generator=generator,
        )

    # ---- training ----------------------------------------------------------------------------

    def stage_pairs(self, stage: Stage, n: int) -> tuple[Tensor, Tensor]:
        """Training pairs of a stage: the first coupling, or the previous network's (cached) pairs."""
        if self.model_coupling is not None:
            side = START[self.model_coupling.direction]
            if self.method.cache_size:
                start = torch.empty(n, 0)  # a cached ModelCoupling reads only the batch size
            else:
                start = self.draw(side, n, self.data_generator).to(self.device)
            pair = self.model_coupling(**{side: start})
        elif self.reference is not None:
            side = self.reference.anchor
            pair = self.reference(**{side: self.draw(side, n, self.data_generator).to(self.device)})
        else:
            return self.draw_pairs(n)
        return pair.x0, pair.x1

    def training_loss(self, batch_size: int) -> Tensor:
        stage = self.schedule.stage_at(self.step)
        if self.stage is None or stage.index != self.stage.index:
            self.enter_stage(stage)
        x0, x1 = self.stage_pairs(stage, batch_size)
        eps = self.method.t_epsilon
        t = eps + (1 - 2 * eps) * torch.rand(batch_size, device=self.device)
        network = self.networks[NETWORK_NAME[stage.direction]]
        return dsbm_loss(network, self.process, x0, x1, t, stage.direction, self.method.loss_weight,
                         self.method.loss_reduction)

    # ---- resume ------------------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        if self.stage is None:
            return {"stage": -1}
        state: dict[str, Any] = {"stage": self.stage.index}
        if self.teacher is not None and self.model_coupling is not None:
            state["teacher"] = self.teacher.state_dict()
            state["coupling"] = self.model_coupling.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        index = int(state.get("stage", -1))
        if index < 0:
            return
        stage = self.schedule.stage(index)
        self.stage = stage
        self.ema.active = NETWORK_NAME[stage.direction]
        if "teacher" in state:
            self.teacher = self._frozen_copy(NETWORK_NAME[self.teacher_direction(stage)], state["teacher"])
            self.model_coupling = self._make_model_coupling(stage)
            self.model_coupling.load_state_dict(state["coupling"])

    # ---- evaluation --------------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        metrics = evaluate_translation(self, sigma=self.method.sigma)
        if not self.run.is_main:  # this rank's samples went to rank 0
            return metrics
        metrics["half_iteration"] = self.schedule.stage_at(max(self.step - 1, 0)).index + 1
        samples = metrics["_samples"]
        sb = gaussian_sb(self, self.method.sigma)
        if sb is None:
            return metrics
        for direction in self.directions:
            traj = samples[direction]
            times = self.process.time_grid(traj.path.shape[0] - 1, direction)
            scores = path_metrics(sb, direction, samples[START[direction]], traj.x, traj.path, times)
            metrics.update({f"{direction}/{k}": v for k, v in scores.items() if k not in REPORTED_BY_CORE})
        return metrics
