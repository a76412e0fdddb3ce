"""The `Trainer` interface and the loop services every method reuses.

A method subclasses `Trainer`, declares its ``Config`` (the ``method:`` section), builds its
networks in `setup` and returns the loss of one micro-batch from `training_loss`. The base class
owns the optimiser (AdamW, one parameter group and one gradient-clip norm per network), LR warm-up and
decay (`sbcore.train.lr_schedule`), gradient accumulation, autocast, EMA, seeding, progress, logging
through the lifecycle hooks, periodic evaluation, checkpoints with exact resume
(`sbcore.train.checkpointing`), starting from another run's networks (`train.init_from`), data
parallelism and preemption.

Randomness of a step is a pure function of (seed, step, micro-batch index): before each
micro-batch the global torch RNG and `data_generator` are reseeded from those numbers. That makes
resume exact and makes the global batch the same on 1 or N processes: rank r computes its share of
the micro-batches and the gradients are summed (`sbcore.launch.distributed`). Under DDP every
rank keeps the EMA and samples a share of the evaluation, gathered on rank 0; hooks and checkpoints
belong to rank 0. SIGINT/SIGTERM/SIGUSR1/SIGUSR2 stop the loop at the
next sync point with a checkpoint (`sbcore.launch.signals`).

A step reads nothing back to the host. Its loss and gradient norm stay on the device until the next
sync point: a logging, checkpoint or evaluation step, the last step, or (in a single process) a stop
request; under DDP these are the same steps on every rank, so the ranks' stop agreement rides there
too. A non-finite loss or gradient is never applied (the fused AdamW kernel skips the step through
``found_inf``), and the sync point stops the run naming the step, or reports it skipped
(``train.nonfinite``), so no checkpoint ever holds NaN weights.

Lifecycle hooks go through `Run.call_hook`: one that raises is reported and disabled unless
``log.strict``.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from sbcore.config import DEFAULT_STEPS
from sbcore.config_text import ConfigError
from sbcore.errors import NonFiniteError, UserError
from sbcore.launch import distributed
from sbcore.launch.events import append_event
from sbcore.launch.signals import REQUEUE_SIGNALS, Preempted, StopRequest, requeue_slurm_job
from sbcore.network.base import Network
from sbcore.process.base import Direction, ReferenceProcess
from sbcore.run import Run
from sbcore.sampler.base import Callback, Sampler, Trajectory
from sbcore.seeding import derive_seeds
from sbcore.train.checkpointing import Checkpointing, registered_name
from sbcore.train.ema import EMA
from sbcore.train.init_from import init_networks
from sbcore.train.lr_schedule import learning_rate
from sbcore.train.progress import Progress

if TYPE_CHECKING:
    from sbcore.metrics.translation import Evaluation

#: key of the evaluation's random streams (`derive_seeds(seed, EVAL_STREAM, rank)`).
EVAL_STREAM = 10_000_019
#: devices on which AdamW runs its fused kernel.
FUSED_DEVICES = ("cpu", "cuda")


class Trainer(Checkpointing, ABC):
    """Base trainer. Subclasses implement `setup`, `training_loss` and `evaluate`."""

    Config: ClassVar[type]
    #: the runnable starting point of ``sbcore config plugin=NAME``: a config file in the ``examples/`` folder
    #: of the package that defines this attribute (the paper's process, network and sampler on a small task).
    default_example: ClassVar[str | None] = None
    #: the directions this method can sample ("forward": x0 -> x1, "backward": x1 -> x0); set in setup.
    directions: tuple[Direction, ...] = ()

    def __init__(self, run: Run) -> None:
        self.run = run
        self.cfg = run.config.train
        self.method = run.config.method
        self.device = run.device
        self.step = 0
        self.networks = nn.ModuleDict()
        self.data_generator = torch.Generator().manual_seed(run.config.seed + 1)
        #: how the global batch is split over ranks and micro-batches (see `sbcore.launch.distributed`).
        self.plan = distributed.plan_batches(self.cfg.batch_size, self.cfg.grad_accum)
        self._stop: StopRequest | None = None
        self._prepared = False
        #: (the newest checkpoint, loaded) once `check_resume` has read it, so `fit` does not read it again.
        self._checked_resume: tuple[Any] | None = None
        self._stop_agreed = 0
        #: (step, [loss, gradient norm]) of the steps since the last sync point, still on the device.
        self._pending: list[tuple[int, Tensor]] = []
        #: finite losses since the last logging step (their mean is the logged loss).
        self._window: list[float] = []

    # ---- what a method supplies ------------------------------------------------------------

    @classmethod
    def resolve_config(cls, config: Any) -> Any:
        """Settings the method derives from its own section (e.g. `train.steps` from a schedule), applied
        when the config is built, so the run folder's config.yaml states what actually runs. A method that
        overrides it calls this one last: it fills an open `train.steps`."""
        if config.train.steps is None:
            return attrs.evolve(config, train=attrs.evolve(config.train, steps=DEFAULT_STEPS))
        return config

    @abstractmethod
    def setup(self) -> None:
        """Build data sources, process, coupling and `self.networks` (a name -> Network dict)."""

    @abstractmethod
    def training_loss(self, batch_size: int) -> Tensor:
        """Draw a micro-batch of `batch_size` and return its scalar loss."""

    @abstractmethod
    def evaluate(self) -> Evaluation:
        """Sample with the EMA networks; return the metrics and the translations they came from (and
        write pictures to the run folder); `sbcore_evaluate` hooks receive the result.

        Called on every rank under DDP: each samples its share and rank 0 gathers and scores
        (`sbcore.metrics.translation.evaluate_translation` does this); other ranks' results are ignored."""

    @abstractmethod
    def draw(self, side: str, n: int, generator: torch.Generator) -> Tensor:
        """n data samples of side "x0" or "x1" (on the CPU), drawn with `generator`."""

    def open_data(self, data: Any) -> dict[str, Any]:
        """The data objects `draw` reads (attribute name -> source), built from a section shaped like
        ``data``: the training data in `setup`, held-out data for evaluation (`drawing_from`)."""
        raise NotImplementedError(f"method {self.run.config.plugin!r} cannot draw from other data")

    def open_source(self, data: Any, side: str) -> Any:
        """``data.<side>`` built; with the run's ``data.latent``, the latent codes of its items (encoded once,
        cached beside the runs: `sbcore.data.latent`). A method whose `open_data` builds through here
        supports latent bridges."""
        spec = getattr(data, side)
        source = spec.build(self.run.registry)
        if self.run.config.data.latent is None:
            return source
        from sbcore.data.latent import encode_source

        cache = Path(self.run.config.out) / ".latents"
        return encode_source(source, spec, self.latent_codec(), cache, f"data.{side}")

    def latent_codec(self) -> Any:
        """The run's latent codec (None without ``data.latent``), built once, on the run's device."""
        spec = self.run.config.data.latent
        if spec is not None and getattr(self, "latent", None) is None:
            self.latent = spec.build(self.run.registry).to(self.device)
        return getattr(self, "latent", None)

    def to_pixels(self, x: Tensor) -> Tensor:
        """Samples as pictures: decoded from latent codes with ``data.latent``, else unchanged."""
        codec = self.latent_codec()
        return x if codec is None else codec.decode(x)

    @contextlib.contextmanager
    def drawing_from(self, opened: dict[str, Any]) -> Iterator[None]:
        """`draw` reads `opened` (from `open_data`) inside the block and the training data again after it."""
        saved = {name: getattr(self, name) for name in opened}
        for name, value in opened.items():
            setattr(self, name, value)
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    @abstractmethod
    def sample(
        self, direction: Direction, x_start: Tensor, steps: int | None = None, return_path: bool = False,
        record: bool = False, cond: Tensor | None = None, callback: Callback | None = None,
    ) -> Trajectory:
        """Integrate the learned process from `x_start` with the current weights: `steps` overrides the
        sampler's, `record` keeps each step's predicted end, `cond` goes to the network, `callback`
        runs after every step (`sbcore.sampler.base.Callback`)."""

    def extra_state(self) -> dict[str, Any]:
        """Method state that must survive a resume (e.g. a coupling cache)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional, empty by default
        """Restore what `extra_state` returned."""

    # ---- services -----------------------------------------------------------------------------

    def add_network(self, name: str, network: Network) -> Network:
        self.networks[name] = network.to(self.device)
        return self.networks[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        precision = self.cfg.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily swap in the EMA weights (for sampling and evaluation)."""
        backup = {k: p.detach().clone() for k, p in self.networks.named_parameters()}
        self.ema.copy_to(self.networks)
        was_training = self.networks.training
        self.networks.eval()
        try:
            yield self.networks
        finally:
            with torch.no_grad():
                for k, p in self.networks.named_parameters():
                    p.copy_(backup[k])
            self.networks.train(was_training)

    def lr_span(self, step: int) -> tuple[int, int]:
        """(first step, length) of the learning-rate schedule's span holding `step`: the whole run here;
        alternating methods return their stage's with ``train.lr_span: stage``."""
        return 0, self.cfg.steps

    def lr_at(self, step: int) -> float:
        """The learning rate of `step` (`sbcore.train.lr_schedule`): a pure function of the step, so resume is exact."""
        cfg = self.cfg
        start, length = self.lr_span(step)
        return learning_rate(step, start, length, lr=cfg.lr, schedule=cfg.lr_schedule, warmup_steps=cfg.warmup_steps,
                             min_lr=cfg.min_lr, gamma=cfg.lr_gamma, step_size=cfg.lr_step_size)

    def _seed(self) -> None:
        seed = self.run.config.seed
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _build_optimizer(self) -> None:
        #: one optimiser parameter group per network (named), each clipped on its own (`clip_gradients`).
        groups = [{"name": name, "params": [p for p in net.parameters() if p.requires_grad]}
                  for name, net in self.networks.items()]
        groups = [group for group in groups if group["params"]]
        #: what the optimiser updates (and gradients are all-reduced over), listed once.
        self.trainable = [p for group in groups for p in group["params"]]
        # the fused kernel updates every parameter in one call (per dtype), instead of a Python loop over tensors
        self.optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay,
                                           fused=self.device.type in FUSED_DEVICES)
        self.ema = EMA(self.networks, self.cfg.ema_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.precision == "fp16")

    # ---- one optimisation step ---------------------------------------------------------------

    def _reseed(self, index: int) -> None:
        """Seed the micro-batch `index` of the current step (see the module docstring)."""
        torch_seed, data_seed = distributed.micro_seeds(self.run.config.seed, self.step, index)
        # what torch.manual_seed sets here, without its per-call pass over every device backend
        torch.default_generator.manual_seed(torch_seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(torch_seed)
        self.data_generator.manual_seed(data_seed)

    def train_step(self) -> None:
        """One optimisation step that reads nothing back to the host: the loss and gradient norm stay on the
        device (`_pending`) until `_collect` reads them at the next sync point. A step whose loss or gradient
        is not finite is not applied: the fused AdamW kernel skips it through `found_inf`, as under AMP's
        GradScaler, leaving weights and step counts as they were; `_collect` then stops the run (or reports
        the skip) before anything is logged or checkpointed."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        plan = self.plan
        loss: Tensor | None = None
        for index in plan.indices():
            self._reseed(index)
            with self.autocast():
                micro = self.training_loss(plan.micro_batch) / plan.micro_batches
            self.scaler.scale(micro).backward()
            loss = micro.detach().float() if loss is None else loss + micro.detach().float()
        loss = distributed.all_reduce_grads(self.trainable, loss)
        self.scaler.unscale_(self.optimizer)
        grad_norm = self.clip_gradients()
        record = torch.stack([loss, grad_norm.float()])
        self._pending.append((self.step + 1, record))
        if self.scaler.is_enabled():  # the scaler skips steps with non-finite gradients itself
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif self.optimizer.defaults["fused"]:
            self.optimizer.found_inf = (~torch.isfinite(record.sum())).float()
            self.optimizer.step()
        elif bool(torch.isfinite(record).all()):  # an unfused optimiser (other devices) cannot skip on its own
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update()  # on every rank (weights are identical), so every rank can sample for evaluation
        self.step += 1

    def _collect(self) -> dict[str, float]:
        """The sync point's one host read: the pending steps' losses and gradient norms, and (under DDP) the
        ranks' agreement on a stop request. Returns the last step's gradient norm and lr, how many steps were
        skipped, and adds the finite losses to the logging window; a non-finite step stops the run here
        (`train.nonfinite: stop`) or is reported as skipped."""
        values = torch.stack([record for _, record in self._pending]).tolist() if self._pending else []
        steps = [step for step, _ in self._pending]
        self._pending.clear()
        signum = self._stop.signum if self._stop is not None else None
        self._stop_agreed = distributed.max_over_ranks(signum or 0, self.device)
        skipped = 0
        for step, (loss, norm) in zip(steps, values, strict=True):
            if math.isfinite(loss) and (self.scaler.is_enabled() or math.isfinite(norm)):
                self._window.append(loss)
                continue
            what = f"step {step}: loss {loss}, gradient norm {norm}"
            if self.cfg.nonfinite == "stop":
                raise NonFiniteError(f"{what} (not finite); the run stopped and its newest checkpoint (finite) is "
                                     "kept. Lower train.lr or set train.grad_clip, then resume=true; "
                                     "train.nonfinite=skip skips such steps instead")
            self.run.echo(f"{what} (not finite): step skipped (train.nonfinite=skip)")
            skipped += 1
        stats = {"grad_norm": values[-1][1] if values else math.nan, "lr": self.optimizer.param_groups[0]["lr"]}
        return {**stats, "skipped": float(skipped)} if skipped else stats

    def clip_gradients(self) -> Tensor:
        """Clip each network's gradient norm to `train.grad_clip` on its own, so two networks trained in one
        run (forward and backward) never share a clip budget; returns the norm over all of them, before clipping.
        Without a clip the norms are only measured (for the finiteness check and the log)."""
        groups = [[p for p in group["params"] if p.grad is not None] for group in self.optimizer.param_groups]
        groups = [params for params in groups if params]
        if not groups:
            return torch.zeros((), device=self.device)
        norms = [torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True) for params in groups]
        if self.cfg.grad_clip is not None:  # clip_grads_with_norm_ scales the .grad of the parameters it is given
            for params, norm in zip(groups, norms, strict=True):
                torch.nn.utils.clip_grads_with_norm_(params, self.cfg.grad_clip, norm, foreach=True)
        return torch.linalg.vector_norm(torch.stack(norms))

    # ---- the loop ----------------------------------------------------------------------------

    def check_components(self) -> None:
        """The process fits the data's shape and the sampler fits the process: config errors at set-up
        (`prepare`, and `sbcore sample`/`eval` with their sampler overrides), never mid-run crashes."""
        process, shape = getattr(self, "process", None), getattr(self, "shape", None)
        if not isinstance(process, ReferenceProcess):
            return
        sampler = getattr(self, "sampler", None)
        checks = [(lambda: process.check_data_shape(tuple(shape)), "config.process")] if shape is not None else []
        if isinstance(sampler, Sampler):
            checks.append((lambda: sampler.check_process(process), "config.sampler"))
        for check, where in checks:
            try:
                check()
            except (ValueError, TypeError) as exc:
                raise ConfigError([f"{exc} @ {where}"]) from None

    def prepare(self) -> None:
        """Seed, build (`setup`) and check that every network is registered, once.

        The launcher calls it before the run folder is written, so a bad data file or network
        stops the run before anything is on disk; `fit` calls it when nobody did."""
        if self._prepared:
            return
        self._seed()
        self.setup()
        if self.run.config.data.latent is not None and getattr(self, "latent", None) is None:
            raise UserError(f"data.latent: method {self.run.config.plugin!r} does not build its data through "
                            "Trainer.open_source, so it cannot train in latent space")
        self.check_components()
        for net in self.networks.values():
            registered_name(self.run, type(net))
        if self.cfg.init_from is not None:
            path = init_networks(self.networks, self.cfg.init_from, self.cfg.init_map)
            self.run.echo(f"init_from: networks loaded from {path}")
        self._prepared = True

    def fit(self) -> dict[str, Any]:
        run = self.run
        self.prepare()
        if run.is_main:
            from sbcore.sample import record_data  # late: sample imports the trainer's neighbours

            record_data(self)
        distributed.broadcast_module(self.networks)
        self._build_optimizer()
        if run.config.resume:
            self._resume()
        self._stop, self._stop_agreed = StopRequest(), 0
        try:
            return self._loop()
        finally:
            self._stop.close()
            self._stop = None

    def _loop(self) -> dict[str, Any]:
        run, cfg, main = self.run, self.cfg, self.run.is_main
        if main:
            distributed.write_plan(self.plan, run.dir)
            append_event(run.dir, "start", step=self.step, world_size=self.plan.world_size)
            run.call_hook("sbcore_run_start")
        bar = Progress(cfg.steps, self.step, run.dir.name, enabled=cfg.progress and main)
        started = time.perf_counter()
        start_step, eval_seconds = self.step, 0.0
        alone = self.plan.world_size == 1
        while self.step < cfg.steps:
            self.train_step()
            bar.update(1)
            step = self.step
            log = step % cfg.log_every == 0 or step == cfg.steps
            save = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0 and step < cfg.steps
            evaluate = bool(cfg.eval_every) and step % cfg.eval_every == 0 and step < cfg.steps
            # the sync points: the same steps on every rank; alone, a stop request is one too
            if not (log or save or evaluate or (alone and self._stop.signum is not None)):
                continue
            stats = self._collect()
            if log:
                stats = {"loss": sum(self._window) / len(self._window) if self._window else math.nan, **stats}
                self._window.clear()
                bar.set_loss(stats["loss"])
                if main:
                    run.call_hook("sbcore_step_end", step=step, metrics=stats)
            if self._stop_agreed and step < cfg.steps:
                bar.close()
                self._preempt(self._stop_agreed)
            if save:
                self.save_checkpoint()
            if evaluate:
                eval_started = time.perf_counter()
                self._evaluate()
                eval_seconds += time.perf_counter() - eval_started
        bar.close()
        elapsed = time.perf_counter() - started
        self.save_checkpoint()
        # train_seconds: the loop, evaluations inside it included; eval_seconds: those and the final evaluation
        summary = {"step": self.step, "train_seconds": round(elapsed, 3), "eval_seconds": round(eval_seconds, 3),
                   "steps_per_second": round((self.step - start_step) / elapsed, 2) if elapsed > 0 else None}
        eval_started = time.perf_counter()
        summary.update(self._evaluate())
        summary["eval_seconds"] = round(eval_seconds + time.perf_counter() - eval_started, 3)
        run.summary = summary
        if main:
            append_event(run.dir, "finished", step=self.step)
            run.call_hook("sbcore_run_end", summary=summary)
        return summary

    def _preempt(self, signum: int) -> None:
        """Checkpoint, ask SLURM to requeue on SIGUSR1/2 (rank 0), and leave the loop."""
        path = self.save_checkpoint()
        requeued = None
        if self.run.is_main:
            if signum in REQUEUE_SIGNALS:
                requeued = requeue_slurm_job()
            name = signal.Signals(signum).name
            append_event(self.run.dir, "preempted", step=self.step, signal=name, requeued=requeued)
            self.run.echo(f"{name}: checkpoint {path} at step {self.step}"
                          + (f"; requeued job {requeued}" if requeued else "; resume with resume=true"))
        distributed.barrier()
        raise Preempted(signum, self.step)

    def _evaluate(self) -> dict[str, Any]:
        """Evaluate on EMA weights with its own RNG stream, so training randomness is untouched.

        Under DDP every rank samples its share of the evaluation samples (its own noise stream) and
        rank 0 gathers them, scores them and runs the evaluation hooks."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(derive_seeds(self.run.config.seed, EVAL_STREAM, self.plan.rank)[0])
            with self.ema_weights():
                evaluation = self.evaluate()
            if not self.run.is_main:
                distributed.barrier()
                return {}
            extra = self.run.call_hook("sbcore_evaluate", evaluation=evaluation)
        metrics = dict(evaluation.metrics)
        for result in extra:
            metrics.update(result or {})
        logged = {f"eval/{k}": v for k, v in metrics.items()}
        self.run.call_hook("sbcore_step_end", step=self.step, metrics=logged)
        distributed.barrier()
        return metrics
