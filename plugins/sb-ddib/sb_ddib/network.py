"""The residual MLP of DDIB's 2-D experiments (guided-diffusion `SyntheticModel`, Su et al. 2023, App.).

    emb = Linear(C, C) SiLU Linear(C, C) (sinusoid(t * time_scale, C))
    h1  = ResBlock(C)^B (Linear(d, C) x)                    kept as the skip
    h   = ResBlock(C) ResBlock(C) (h1)                      the middle
    h   = ResBlock(2C)^B (concat[h, h1])
    out = Linear(2C, d) SiLU GroupNorm(2C) (h)               the last Linear starts at zero

ResBlock(c): h = Linear(SiLU(GN(x))) + Linear(SiLU(emb)); x + zero-init Linear(Dropout(SiLU(GN(h)))).
The reference embeds the integer step index 0..T-1; `time_scale` = T - 1 does the same for t in [0, 1].
With C = 256, B = 3 it has about 3.1 M parameters (the paper's model, trained for hours on a GPU).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import sinusoidal_embedding, time_like


def _zero(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ResBlock(nn.Module):
    def __init__(self, width: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Linear(width, width))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, width))
        self.out = nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Dropout(dropout),
                                 _zero(nn.Linear(width, width)))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return x + self.out(self.inp(x) + self.emb(emb))


class ResidualMLP(Network):
    """DDIB's 2-D eps-network on vectors of `shape` (d,); `channels` C a multiple of `groups`, at least 2 per group."""

    def __init__(self, shape: tuple[int, ...], channels: int = 256, blocks: int = 3, dropout: float = 0.0,
                 groups: int = 32, time_scale: float = 1000.0) -> None:
        super().__init__()
        if len(shape) != 1:
            raise ValueError(f"network residual_mlp: expected vector data of shape (d,), got {tuple(shape)}")
        if channels % groups or channels < 2 * groups:  # a group of one channel normalises to 0
            raise ValueError(f"network residual_mlp: channels must be a multiple of groups ({groups}) with at least "
                             f"2 per group, got {channels}")
        if blocks < 1 or not 0 <= dropout < 1:
            raise ValueError(f"network residual_mlp: need blocks >= 1 and 0 <= dropout < 1, got {blocks}, {dropout}")
        dim = shape[0]
        self.channels, self.time_scale = channels, time_scale
        self.time = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.inp = nn.Linear(dim, channels)
        self.down = nn.ModuleList(ResBlock(channels, channels, groups, dropout) for _ in range(blocks))
        self.middle = nn.ModuleList(ResBlock(channels, channels, groups, dropout) for _ in range(2))
        self.up = nn.ModuleList(ResBlock(2 * channels, channels, groups, dropout) for _ in range(blocks))
        self.head = nn.Sequential(nn.GroupNorm(groups, 2 * channels), nn.SiLU(), _zero(nn.Linear(2 * channels, dim)))

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        if cond:
            raise TypeError(f"ResidualMLP takes no conditioning inputs, got {sorted(cond)}")
        emb = self.time(sinusoidal_embedding(time_like(t, x), self.channels, self.time_scale).to(x.dtype))
        skip = self.inp(x)
        for block in self.down:
            skip = block(skip, emb)
        h = skip
        for block in self.middle:
            h = block(h, emb)
        h = torch.cat([h, skip], dim=1)
        for block in self.up:
            h = block(h, emb)
        return self.head(h)
