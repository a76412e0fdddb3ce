"""Loss weightings lambda(t) of the bridge-matching loss, as functions of the process.

``uniform`` is DSBM's eq. (10). ``bridge_variance`` weights by the variance the reference still adds
before the direction's end (sigma^2 (1 - t) forward, sigma^2 t backward for dX = sigma dW): the
drift target's noise has variance g^2 / remaining variance, which blows up at the end, and the
weight makes it O(1) (DSBM's image code, `loss_scale`). The minimiser at each t is unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess

Weighting = Literal["uniform", "bridge_variance"]


def loss_weight(name: Weighting, process: ReferenceProcess, t: Tensor, direction: Direction) -> Tensor | None:
    """Per-sample weights of shape (B,), or None for the uniform weighting."""
    if name == "uniform":
        return None
    if name == "bridge_variance":
        return process.remaining_variance(t, direction)
    raise ValueError(f"loss weighting must be uniform or bridge_variance, got {name!r}")


def check_weighting(name: Weighting, process: ReferenceProcess) -> None:
    """bridge_variance is zero everywhere on a deterministic path (sigma = 0, VP): refuse it early."""
    inner = torch.linspace(0.05, 0.95, 5, dtype=torch.float64)
    if name == "bridge_variance" and not float(process.diffusion(inner).abs().max()) > 0:
        raise ValueError(f"loss_weight bridge_variance needs a noisy reference; {process!r} has no diffusion: "
                         "use uniform")
