"""A SiLU MLP on the flattened state: the network type of DSBM's Gaussian and 2-D experiments (Shi et al. 2023)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import time_embedding as _time_embedding
from sbcore.network.embedding import time_like


class MLP(Network):
    """[flatten(x), emb(t)] -> `layers` x (Linear(hidden), SiLU) -> Linear -> reshape to x's shape.

    Works for any `shape` because it flattens. t enters only through the input concatenation,
    which is enough for low-dimensional data. `time_embedding` chooses how (`raw` t as DSBM's
    Gaussian network, `sinusoidal` or learned `fourier` features; `time_scale` their frequency scale).
    """

    def __init__(
        self, shape: tuple[int, ...], hidden: int = 256, layers: int = 3, time_dim: int = 64,
        time_embedding: Literal["raw", "sinusoidal", "fourier"] = "sinusoidal", time_scale: float | None = None,
    ) -> None:
        super().__init__()
        for name, value, low in (("hidden", hidden, 1), ("layers", layers, 1), ("time_dim", time_dim, 2)):
            if value < low:
                raise ValueError(f"MLP {name} must be >= {low}, got {value}")
        if len(shape) == 0 or any(s < 1 for s in shape):
            raise ValueError(f"MLP shape must be a non-empty tuple of positive sizes, got {shape}")
        self.shape = tuple(int(s) for s in shape)
        dim = math.prod(self.shape)
        self.time, time_width = _time_embedding(time_embedding, time_dim, time_scale)
        width, blocks = dim + time_width, []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        if cond:
            raise TypeError(f"MLP takes no conditioning inputs, got {sorted(cond)}")
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"MLP input must have shape (B, *{self.shape}), got {tuple(x.shape)}")
        h = torch.cat([x.flatten(1), self.time(time_like(t, x))], dim=1)
        return self.net(h).view_as(x)
