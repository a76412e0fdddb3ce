"""Alternating training: stages as a pure function of the step, a frozen EMA teacher, a simulation cache.

IPF-style methods (DSBM, Shi et al. 2023, Alg. 1; DSB / S-DSB, De Bortoli et al. 2021, Alg. 1 and Tang
et al. 2024; DBFS) alternate directions: stage n trains one network on samples simulated by the network
of stage n - 1. This module is that loop, configured rather than written by each method:

* `Schedule` maps the global step to its `Stage` (which direction trains, from which step to which),
  so the checkpoint's step is the whole schedule state and a resume lands in the same stage;
* at a stage boundary the previous stage's network is frozen as the *teacher* from its EMA weights,
  the EMA moves only the trained network (`EMA.active`), and optionally its optimiser state is reset;
* the teacher is simulated from real data on its start side through the run's process and sampler
  (`self.predictor(direction, network=teacher)` on `self.sampler.time_grid(...)`), into a
  `SimulationCache` of endpoint pairs, or of whole paths with their times when `cache_paths` is set,
  rebuilt every `refresh_every` steps; teacher and cache are saved in the checkpoint, so a run resumed
  mid-stage is bit-identical to one that was never stopped;
* with ``train.lr_span: stage`` the learning-rate schedule (warm-up and decay, `sbcore.train.lr_schedule`)
  restarts with every stage over its own length (`lr_span`); the default spans the whole run.

A method subclasses both halves and overrides only what differs::

    @attrs.frozen
    class MyConfig(AlternatingConfig):          # fb_sequence, inner_iters, cache_size, ... inherited
        my_option: float = 1.0

    class MyMethod(AlternatingBridgeMatching):
        Config = MyConfig
        cache_paths = True                      # cache rows gain "path" (B, T+1, *D) and "t" (B, T+1)

        def uses_teacher(self, stage):          # default: every stage after the first ones
            ...
        def first_pairs(self, stage, n):        # pairs of the first stages; default: the coupling
            ...
        def simulate(self, direction, x_start): # rows the teacher makes; default: the run's sampler
            ...
        def stage_loss(self, stage, n):         # default: bridge matching on `stage_pairs`
            rows = self.teacher_rows(n)         # n cached rows: x0, x1 (and path, t)
            ...

`network_name(direction)` says which network a direction trains (default: forward_drift /
backward_drift). `train.init_from` loads networks before the EMA is built, so a teacher frozen from the
EMA at the first stage boundary starts from them.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from sbcore.config import CouplingSpec
from sbcore.config_text import ConfigError
from sbcore.coupling.cache import SimulationCache
from sbcore.network.base import Network
from sbcore.process.base import ENDS, Direction, check_prediction
from sbcore.run import Run
from sbcore.train.bridge_matching import NETWORK_NAME, BridgeMatching
from sbcore.train.weighting import Weighting

# ------------------------------------------------------------------------------------------------
# The stage schedule
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class Stage:
    """One stage (a half-iteration): train `direction` for global steps start <= step < stop.

    first: one of the leading stages, trained on the first coupling instead of teacher samples.
    """

    index: int
    direction: Direction
    start: int
    stop: int
    first: bool


@attrs.frozen
class Schedule:
    """fb_sequence repeated; the first `first_stages` stages last `first_inner_iters` steps, the rest `inner_iters`.

    outer_iters counts stages (DSBM's `outer_iters` half-iterations); None means open ended, so the
    run's `train.steps` decides where it stops.
    """

    fb_sequence: tuple[Direction, ...]
    inner_iters: int
    outer_iters: int | None = None
    first_inner_iters: int | None = None
    first_stages: int = 1

    def __attrs_post_init__(self) -> None:
        if not self.fb_sequence or any(d not in ENDS for d in self.fb_sequence):
            raise ValueError(f"fb_sequence must be a non-empty list of forward/backward, got {list(self.fb_sequence)}")
        if self.inner_iters < 1 or (self.first_inner_iters is not None and self.first_inner_iters < 1):
            raise ValueError("inner_iters and first_inner_iters must be >= 1")
        if self.outer_iters is not None and self.outer_iters < 1:
            raise ValueError(f"outer_iters must be >= 1 or null, got {self.outer_iters}")
        if self.first_stages < 1:
            raise ValueError(f"first_stages must be >= 1, got {self.first_stages}")

    @property
    def first_length(self) -> int:
        return self.first_inner_iters or self.inner_iters

    def length(self, index: int) -> int:
        return self.first_length if index < self.first_stages else self.inner_iters

    def start_of(self, index: int) -> int:
        head = min(index, self.first_stages)
        return head * self.first_length + (index - head) * self.inner_iters

    @property
    def total_steps(self) -> int | None:
        return None if self.outer_iters is None else self.start_of(self.outer_iters)

    def stage(self, index: int) -> Stage:
        start = self.start_of(index)
        return Stage(index=index, direction=self.fb_sequence[index % len(self.fb_sequence)], start=start,
                     stop=start + self.length(index), first=index < self.first_stages)

    def stage_at(self, step: int) -> Stage:
        """The stage that global step `step` (0-based, the step about to be taken) belongs to.

        Steps past the end of a finite schedule belong to its last stage (e.g. the final evaluation).
        """
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        head = self.first_stages * self.first_length
        index = step // self.first_length if step < head else self.first_stages + (step - head) // self.inner_iters
        if self.outer_iters is not None:
            index = min(index, self.outer_iters - 1)
        return self.stage(index)


# ------------------------------------------------------------------------------------------------
# The method section every alternating method extends
# ------------------------------------------------------------------------------------------------


def _directions(value: Any) -> tuple[Direction, ...]:
    return tuple(value)


@attrs.frozen
class AlternatingConfig:
    """The `method:` keys of alternating training (a method's Config subclasses this).

    coupling: pairs of the first stages (the later ones train on teacher samples).
    predict, loss_weight, loss_reduction, t_epsilon: the bridge-matching loss, as in `bm`.
    fb_sequence: directions of successive stages, repeated (DSBM: [backward, forward]).
    inner_iters: optimisation steps per stage.
    outer_iters: number of stages; it sets train.steps (giving both, they must agree). null: stages until
        train.steps.
    first_inner_iters: steps of each of the first `first_stages` stages (null: inner_iters).
    first_stages: leading stages trained on `coupling`.
    cache_size: rows simulated by the teacher at once (0: simulate every training batch afresh).
    refresh_every: optimisation steps between cache rebuilds.
    cache_steps: sampler steps of the teacher's simulation; null uses the sampler's own.
    cache_chunk: start samples simulated at once while rebuilding the cache.
    reset_optimizer: clear the trained network's optimiser state when each of its stages starts.
    """

    coupling: CouplingSpec = attrs.field(factory=lambda: CouplingSpec("independent"))
    predict: str = "drift"
    loss_weight: Weighting = "uniform"
    loss_reduction: Literal["sum", "mean"] = "sum"
    t_epsilon: float = attrs.field(default=1.0e-3, validator=[v.ge(0.0), v.lt(0.5)])
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

    def __attrs_post_init__(self) -> None:
        _ = self.schedule  # validates the schedule keys
        check_prediction(self.predict, self.directions)
        if self.cache_steps is not None and self.cache_steps < 1:
            raise ValueError(f"cache_steps must be >= 1 or null, got {self.cache_steps}")

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(dict.fromkeys(self.fb_sequence))

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.fb_sequence, self.inner_iters, self.outer_iters, self.first_inner_iters, self.first_stages)


# ------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------


class AlternatingBridgeMatching(BridgeMatching):
    """Bridge matching over alternating stages, each stage's data simulated by the previous stage's network."""

    Config = AlternatingConfig
    #: keep whole teacher paths ("path" (B, T+1, *D) and their times "t" (B, T+1)) next to the endpoints.
    cache_paths: ClassVar[bool] = False
    #: the method keys that count the stages and their length, and whether the count may be null (open ended).
    stage_keys: ClassVar[tuple[str, str, bool]] = ("outer_iters", "inner_iters", True)

    @classmethod
    def resolve_config(cls, config: Any) -> Any:
        """`train.steps` keeps its one meaning, the run's total steps: `outer_iters` stages fill an open
        `train.steps`; with `outer_iters: null` the stages run until `train.steps`; both given and different
        is refused in one line naming the keys, never silently overridden."""
        schedule = config.method.schedule
        total, steps = schedule.total_steps, config.train.steps
        if total is not None and steps is not None and steps != total:
            count, length, open_ended = cls.stage_keys
            first = (f" (the first {schedule.first_stages} of {schedule.first_inner_iters})"
                     if schedule.first_inner_iters else "")
            hint = f"give method.{count}=null to let train.steps end the stages, or " if open_ended else ""
            raise ConfigError([
                f"train.steps={steps} disagrees with the stage schedule: method.{count}={schedule.outer_iters} "
                f"stages of method.{length}={schedule.inner_iters} steps{first} make {total}; {hint}"
                f"set method.{count} and method.{length} without train.steps @ config.train.steps"])
        if total is not None:
            config = attrs.evolve(config, train=attrs.evolve(config.train, steps=total))
        return super().resolve_config(config)

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.schedule: Schedule = self.method.schedule
        self.stage: Stage | None = None
        #: frozen EMA copy of the network whose samples the current stage trains on (None on first stages).
        self.teacher: Network | None = None
        self.cache: SimulationCache | None = None

    # ---- what a method may override ------------------------------------------------------------

    def network_name(self, direction: Direction) -> str:
        """The network that `direction` trains."""
        return NETWORK_NAME[direction]

    def uses_teacher(self, stage: Stage) -> bool:
        """Whether `stage` trains on the previous stage's samples (else on `first_pairs`)."""
        return not stage.first

    def teacher_direction(self, stage: Stage) -> Direction:
        return self.schedule.stage(stage.index - 1).direction

    def first_pairs(self, stage: Stage, n: int) -> tuple[Tensor, Tensor]:
        """Training pairs of a stage without a teacher: the configured coupling."""
        return self.draw_pairs(n)

    def simulate(self, direction: Direction, x_start: Tensor) -> dict[str, Tensor]:
        """Rows the teacher makes from start samples of `direction`: "x0" and "x1" (data on the start side),
        and with `cache_paths` the path "path" (B, T+1, *D) at the times "t" (B, T+1)."""
        assert self.teacher is not None
        grid = self.sampler.time_grid(self.process, direction, self.method.cache_steps, device=self.device)
        traj = self.sampler.sample(self.predictor(direction, network=self.teacher), x_start, grid,
                                   return_path=self.cache_paths)
        start, end = ENDS[direction]
        rows = {start: x_start, end: traj.x}
        if self.cache_paths:
            assert traj.path is not None
            rows["path"] = traj.path.transpose(0, 1)
            rows["t"] = grid.to(x_start.dtype).expand(x_start.shape[0], -1)
        return rows

    def stage_loss(self, stage: Stage, batch_size: int) -> Tensor:
        """The loss of one micro-batch of `stage`: bridge matching on `stage_pairs`."""
        x0, x1 = self.stage_pairs(stage, batch_size)
        t = self.sample_t(batch_size)
        network = self.networks[self.network_name(stage.direction)]
        return self.direction_loss(stage.direction, x0, x1, t, network=network)

    # ---- the service --------------------------------------------------------------------------

    def training_loss(self, batch_size: int) -> Tensor:
        stage = self.schedule.stage_at(self.step)
        if self.stage is None or stage.index != self.stage.index:
            self.enter_stage(stage)
        return self.stage_loss(stage, batch_size)

    def stage_pairs(self, stage: Stage, n: int) -> tuple[Tensor, Tensor]:
        """Training pairs: the teacher's (cached) samples, or `first_pairs` on a stage without a teacher."""
        if self.teacher is None:
            return self.first_pairs(stage, n)
        rows = self.teacher_rows(n)
        return rows["x0"], rows["x1"]

    def teacher_rows(self, n: int) -> dict[str, Tensor]:
        """n rows simulated by the teacher: drawn from the cache, or simulated now when cache_size is 0."""
        if self.cache is not None:
            return self.cache.draw(n)
        assert self.stage is not None
        with torch.no_grad():
            return self._simulate_from_data(self.teacher_direction(self.stage), n)

    def lr_span(self, step: int) -> tuple[int, int]:
        """With ``train.lr_span: stage`` every stage restarts the learning-rate schedule over its own steps."""
        if self.cfg.lr_span == "run":
            return super().lr_span(step)
        stage = self.schedule.stage_at(step)
        return stage.start, stage.stop - stage.start

    def _simulate_from_data(self, direction: Direction, n: int) -> dict[str, Tensor]:
        start = self.draw(ENDS[direction][0], n, self.data_generator).to(self.device)
        return self.simulate(direction, start)

    def enter_stage(self, stage: Stage) -> None:
        """Start a stage: the EMA follows its network, and the previous network is frozen as the teacher."""
        active = self.network_name(stage.direction)
        if self.method.reset_optimizer and stage.index > 0:
            for p in self.networks[active].parameters():
                self.optimizer.state.pop(p, None)
        teacher = None
        if self.uses_teacher(stage):
            name = self.network_name(self.teacher_direction(stage))
            teacher = {k[len(name) + 1 :]: p for k, p in self.ema.shadow.items() if k.startswith(name + ".")}
        self._set_stage(stage, teacher)

    def _set_stage(self, stage: Stage, teacher: dict[str, Tensor] | None) -> None:
        self.stage = stage
        self.ema.active = self.network_name(stage.direction)
        self.teacher = self.cache = None
        if teacher is None:
            return
        net = copy.deepcopy(self.networks[self.network_name(self.teacher_direction(stage))])
        net.load_state_dict(teacher, strict=False)  # parameters; buffers come with the copy
        self.teacher = net.eval().requires_grad_(False)
        m = self.method
        if m.cache_size:
            direction = self.teacher_direction(stage)
            self.cache = SimulationCache(
                lambda n: self._simulate_from_data(direction, n), m.cache_size,
                m.refresh_every * self.plan.per_rank_accum,  # cache draws per optimisation step on this rank
                m.cache_chunk, torch.Generator().manual_seed(self.run.config.seed * 100_003 + stage.index),
            )

    # ---- resume -------------------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        if self.stage is None:
            return {"stage": -1}
        state: dict[str, Any] = {"stage": self.stage.index}
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        if self.cache is not None:
            state["cache"] = self.cache.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        index = int(state.get("stage", -1))
        if index < 0:
            return
        self._set_stage(self.schedule.stage(index), state.get("teacher"))
        if self.cache is not None:
            self.cache.load_state_dict(state["cache"])
