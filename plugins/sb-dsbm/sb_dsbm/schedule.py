"""The half-iteration schedule of DSBM as a pure function of the trainer's global step.

DSBM alternates directions: half-iteration n trains one network for `inner_iters` steps, on pairs
made by the network trained in half-iteration n - 1 (Shi et al. 2023, Alg. 1). Writing the stage as a
function of the step, instead of keeping a loop counter, makes a resumed run land in the same stage
with the same remaining steps: the checkpoint's step is the whole schedule state.
"""

from __future__ import annotations

import attrs

from sbcore.process.base import Direction


@attrs.frozen
class Stage:
    """One half-iteration: train `direction` for global steps start <= step < stop.

    first: the stage trains on the first coupling (independent, reference or Sinkhorn) instead of
        pairs simulated by the previous stage's network.
    """

    index: int
    direction: Direction
    start: int
    stop: int
    first: bool


@attrs.frozen
class Schedule:
    """fb_sequence repeated; the first `first_stages` stages last `first_inner_iters` steps, the rest `inner_iters`.

    outer_iters counts half-iterations (as `outer_iters` of DSBM's Gaussian script); None means open
    ended, so the run's `train.steps` decides where it stops.
    """

    fb_sequence: tuple[Direction, ...]
    inner_iters: int
    outer_iters: int | None = None
    first_inner_iters: int | None = None
    first_stages: int = 1

    def __attrs_post_init__(self) -> None:
        if not self.fb_sequence or any(d not in ("forward", "backward") for d in self.fb_sequence):
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
        return Stage(
            index=index,
            direction=self.fb_sequence[index % len(self.fb_sequence)],
            start=start,
            stop=start + self.length(index),
            first=index < self.first_stages,
        )

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
