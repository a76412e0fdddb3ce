"""The metric interface: a registered class, configured by keyword arguments, called on one direction.

A metric compares the samples a direction *generated* with a *reference*, which is one of

* ``"target"`` -- real data of the side the direction ends on, unpaired (distribution metrics);
* ``"source"`` -- the inputs the samples were generated from, row-aligned (MSD, faithfulness);
* ``"paired"`` -- the true partner of each input in paired data, row-aligned (PSNR/SSIM for
  restoration); skipped when the data is not paired;
* ``"translation"`` -- the direction's whole `sbcore.metrics.translation.Translation` (direction, inputs
  and outputs), for scores of the generated coupling itself.

A metric that needs more than samples (the closed-form solution of a Gaussian problem) reads it from the
run in `bind`, and raises `MetricUnavailable` when the run has none: it is then skipped with that reason.

Constructor parameters are simple typed keywords with defaults, so a metric can be chosen from YAML
(``eval: {metrics: [w2, {kind: mmd, scales: [0.5, 1.0]}]}``) and validated like any component.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sbcore.run import Run

Reference = Literal["target", "source", "paired", "translation"]


class MetricUnavailable(Exception):
    """Raised by `Metric.bind` when a run lacks what the metric needs; the message says what."""


class Metric(ABC):
    """One number (or a few named numbers) from generated samples and a reference batch."""

    #: what `__call__` compares the generated samples with (see the module docstring).
    reference: ClassVar[Reference] = "target"
    #: True for metrics defined only on images (B, C, H, W).
    images_only: ClassVar[bool] = False
    #: True for metrics that need the class of each input (`Translation.labels`).
    needs_labels: ClassVar[bool] = False

    def bind(self, run: Run) -> None:  # noqa: B027 - most metrics need nothing from the run
        """Read what the metric needs from the run (config, registry) before it scores an evaluation."""

    @abstractmethod
    def __call__(self, generated: Tensor, reference: Any, generator: torch.Generator) -> float | dict[str, float]:
        """A float, or a dict whose keys are appended to the metric's name (``kid`` -> ``kid_std``; the key
        ``""`` is the name itself). `reference` is a Tensor, or the Translation for ``"translation"``."""


def subsample(x: Tensor, n: int | None, generator: torch.Generator) -> Tensor:
    """At most n rows of x, drawn without replacement with `generator` (all rows when n is None)."""
    if n is None or len(x) <= n:
        return x
    return x[torch.randperm(len(x), generator=generator)[:n]]


def flat64(x: Tensor) -> Tensor:
    """(N, ...) -> (N, D) float64 on the CPU: distances are accumulated in double precision."""
    return x.detach().flatten(1).cpu().double()
