"""DBFS: iterated bridge matching in function space (Park, Choi, Lim, Lee, NeurIPS 2024, arXiv 2405.20630).

DBFS is IDBM (Peluchetti 2023) on a function-space reference: the core's alternating bridge matching
(`sbcore.train.alternating`) with an endpoint cache, run on the spectral process (`process: {kind:
spectral}`), with networks that predict their end point (x1-hat forward, x0-hat backward) and the plain
mean-squared loss ||f(x_t, t) - end||^2 (spec dbfs.md, Sec. 2.6). Stage 1 trains the backward network on
independent pairs; every later stage trains on endpoints simulated by the previous stage's frozen EMA
network from real data, refreshed every `refresh_every` steps (Sec. 2.7).

Times follow the reference: t ~ U[0, t_max) measured from the direction's start, t_max = 1 - 0.5 / T for
a T-step sampler, so the network is never asked for t beyond the last sampler step's start. Sampling at
another grid size (`resolution`) resizes the start functions to that grid and integrates the same SDE with
the same network (Sec. 2.9).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from sb_dbfs.resolution import resize
from sbcore.io import plots
from sbcore.metrics.translation import (
    PICTURE_SAMPLES,
    Evaluation,
    Translation,
    evaluate_translation,
    moment_metrics,
    sample_in_chunks,
)
from sbcore.process.base import Direction
from sbcore.sampler.base import Callback, Trajectory
from sbcore.train.alternating import AlternatingBridgeMatching, AlternatingConfig


def _t_max(_: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not 0 < value <= 1:
        raise ValueError(f"t_max: expected a number in (0, 1] or null, got {value}")


@attrs.frozen
class DBFSConfig(AlternatingConfig):
    """The `method:` section of `dbfs`: the alternating keys (`AlternatingConfig`) with DBFS's defaults.

    t_max: training times t ~ U[0, t_max) from each direction's start; null: 1 - 0.5 / T, T the steps of
        the teacher's simulation (`cache_steps`, else the sampler's). It replaces `t_epsilon`, unused here.
    eval_resolutions: grid sizes at which every evaluation also samples the same inputs (resized there);
        the outputs are drawn as grids at that size and scored by the run's metrics after resizing back to
        the training grid, under the keys DIRECTION@SIZE/METRIC.
    The reference's MNIST settings are fb_sequence [backward, forward], 60 stages of 5000 steps, a cache of
    2560 endpoints refreshed every 250 steps and 30 Euler steps (examples/dbfs/mnist_emnist.yaml).
    """

    predict: str = "endpoint"
    loss_reduction: Literal["sum", "mean"] = "mean"
    inner_iters: int = 5000
    outer_iters: int | None = 60
    cache_size: int = 2560
    refresh_every: int = 250
    cache_chunk: int = 256
    t_max: float | None = attrs.field(default=None, validator=_t_max)
    eval_resolutions: tuple[int, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if any(int(r) < 1 for r in self.eval_resolutions):
            raise ValueError(f"eval_resolutions: expected grid sizes >= 1, got {list(self.eval_resolutions)}")


class DBFS(AlternatingBridgeMatching):
    """Alternating endpoint-predicting bridge matching on the run's (spectral) process."""

    Config = DBFSConfig
    default_example = "gp1d.yaml"

    @property
    def t_max(self) -> float:
        if self.method.t_max is not None:
            return self.method.t_max
        return 1 - 0.5 / (self.method.cache_steps or self.sampler.steps)

    def sample_t(self, n: int) -> Tensor:
        """t ~ U[0, t_max) from the start of the direction being trained (1 - that, backward)."""
        elapsed = self.t_max * torch.rand(n, device=self.device)
        direction = self.stage.direction if self.stage is not None else "forward"
        return elapsed if direction == "forward" else 1 - elapsed

    def sample(
        self, direction: Direction, x_start: Tensor, steps: int | None = None, return_path: bool = False,
        record: bool = False, cond: Tensor | None = None, callback: Callback | None = None,
        resolution: int | None = None,
    ) -> Trajectory:
        """Sample as `bm` does; `resolution` first resizes the start functions to that grid size."""
        if resolution is not None:
            x_start = resize(x_start, resolution)
        return super().sample(direction, x_start, steps, return_path, record, cond, callback)

    def evaluate(self) -> Evaluation:
        """The core's translation evaluation, plus each of `eval_resolutions` (see `DBFSConfig`)."""
        evaluation = evaluate_translation(self)
        for direction, tr in list(evaluation.translations.items()):
            for size in self.method.eval_resolutions:
                out = sample_in_chunks(self, direction, tr.inputs, progress=False, resolution=size)
                if out.x.ndim == 4:
                    tag = f"{direction}_res{size}_step{self.step:06d}_output.png"
                    plots.image_grid(self.run.dir / "pictures" / tag, out.x[:PICTURE_SAMPLES])
                down = resize(out.x, tr.inputs.shape[-1])
                key = f"{direction}@{size}"
                evaluation.translations[key] = Translation(direction, tr.inputs, Trajectory(down, None, out.nfe),
                                                           tr.data, tr.partner)
                moments = moment_metrics(self, evaluation.translations[key])
                evaluation.metrics.update({f"{key}/{k}": v for k, v in moments.items()})
        return evaluation
