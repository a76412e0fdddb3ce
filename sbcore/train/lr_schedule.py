"""Learning rate as a closed-form function of the step (`train.lr_schedule`), so a resumed run needs no
scheduler state: the step in the checkpoint fixes the rate.

A schedule runs over a *span* of L steps starting at global step S: the whole run (``train.lr_span: run``,
S = 0, L = train.steps) or, for alternating methods, each stage (``lr_span: stage``: every half-iteration
restarts warm-up and decay over its own length, as each is a fresh regression onto a new teacher). With
s = step - S the step about to be taken, W = warmup_steps, lr the peak and p = (s - W) / (L - W) the
fraction of the decay done (0 on the first step after warm-up):

    warm-up   s < W        lr (s + 1) / W
    constant               lr
    cosine                 min_lr + (lr - min_lr) (1 + cos(pi p)) / 2    (Loshchilov & Hutter 2017, eq. (5))
    linear                 min_lr + (lr - min_lr) (1 - p)
    step                   lr gamma ** floor((s - W) / lr_step_size)      (torch's StepLR; I2SB: 0.99 / 1000)

min_lr applies to cosine and linear only.
"""

from __future__ import annotations

import math
from typing import Literal

LRSchedule = Literal["constant", "cosine", "linear", "step"]
LRSpan = Literal["run", "stage"]


def learning_rate(
    step: int, span_start: int, span_length: int, *, lr: float, schedule: LRSchedule = "constant",
    warmup_steps: int = 0, min_lr: float = 0.0, gamma: float = 0.1, step_size: int = 1000,
) -> float:
    """The learning rate of global step `step` (0-based) in the span [span_start, span_start + span_length)."""
    s = step - span_start
    if s < 0:
        raise ValueError(f"step {step} is before its span's start {span_start}")
    if warmup_steps and s < warmup_steps:
        return lr * (s + 1) / warmup_steps
    if schedule == "constant":
        return lr
    decayed = s - warmup_steps
    if schedule == "step":
        return lr * gamma ** (decayed // step_size)
    p = min(1.0, decayed / max(1, span_length - warmup_steps))
    if schedule == "cosine":
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - p)
    raise ValueError(f"lr_schedule must be constant, cosine, linear or step, got {schedule!r}")
