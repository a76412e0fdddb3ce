"""The residual MLP of Simplified DSB's 2-D experiments (Tang et al. 2024, App.; the reference's `ResMLP`).

Linear + ReLU lifts x (without t) to `hidden` units; each of `blocks` residual blocks is
h <- SiLU(h + AdaLN(Linear(h), t)), where the adaptive LayerNorm's scale and shift come from a learned
embedding of the integer step; a last Linear maps back. The reference's networks see the integer step
k in 0..N-1; here t in [0, 1] is rounded to the step round(t * steps), so a table of steps + 1 rows
serves both directions (the x1 -> x0 chain sees t = 1 - s / N). 155 394 + 3 * 128 parameters at the
paper's size (hidden 128, 3 blocks, N = 16); the extra row per block is the t = 1 step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import time_like


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine weights, then (1 + scale(k)) * h + shift(k) from Embedding -> SiLU -> Linear."""

    def __init__(self, hidden: int, steps: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(steps + 1, hidden)
        self.proj = nn.Linear(hidden, 2 * hidden)
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)

    def forward(self, h: Tensor, k: Tensor) -> Tensor:
        scale, shift = self.proj(F.silu(self.embed(k))).chunk(2, dim=-1)
        return self.norm(h) * (1 + scale) + shift


class ResMLP(Network):
    """x (flattened) -> Linear, ReLU -> `blocks` x [Linear, AdaLN(t), + skip, SiLU] -> Linear -> x's shape."""

    def __init__(self, shape: tuple[int, ...], hidden: int = 128, blocks: int = 3, steps: int = 16) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("blocks", blocks), ("steps", steps)):
            if value < 1:
                raise ValueError(f"ResMLP {name} must be >= 1, got {value}")
        self.shape = tuple(int(s) for s in shape)
        self.steps = steps
        dim = math.prod(self.shape)
        self.inp = nn.Linear(dim, hidden)
        self.linears = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.norms = nn.ModuleList(AdaLayerNorm(hidden, steps) for _ in range(blocks))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        if cond:
            raise TypeError(f"ResMLP takes no conditioning inputs, got {sorted(cond)}")
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"ResMLP input must have shape (B, *{self.shape}), got {tuple(x.shape)}")
        k = torch.round(time_like(t, x).float() * self.steps).long().clamp(0, self.steps)
        h = F.relu(self.inp(x.flatten(1)))
        for linear, norm in zip(self.linears, self.norms, strict=True):
            h = F.silu(h + norm(linear(h), k))
        return self.out(h).view_as(x)
