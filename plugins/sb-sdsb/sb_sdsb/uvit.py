"""A small U-ViT (Bao et al. 2023, "All are Worth Words", Sec. 3): a ViT on image patches whose time is one
more token and whose shallow and deep blocks are joined by long skip connections; the network Simplified
DSB uses for CelebA (Tang et al. 2024, Sec. 5; `uvit-b` there is dim 512, depth 13, patch 4).

Tokens: [time, patch_1 .. patch_P] with learned position embeddings. `depth` = 2 n + 1 blocks: n in-blocks
whose outputs are kept, one mid-block, n out-blocks that first fuse Linear([h, skip]). The patch tokens
are mapped back to pixels and smoothed by a 3x3 convolution (U-ViT's `conv` option).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import TimeEmbedding, time_like


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)); optional long-skip fusion first."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, skip: bool) -> None:
        super().__init__()
        self.heads = heads
        self.fuse = nn.Linear(2 * dim, dim) if skip else None
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.fuse is not None:
            x = self.fuse(torch.cat([x, skip], dim=-1))
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class UViT(Network):
    """U-ViT on (C, H, W) images with H and W divisible by `patch`."""

    def __init__(self, shape: tuple[int, ...], patch: int = 4, dim: int = 128, depth: int = 7, heads: int = 4,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"UViT needs image data (C, H, W), got shape {tuple(shape)}")
        c, h, w = (int(s) for s in shape)
        if patch < 1 or h % patch or w % patch:
            raise ValueError(f"UViT patch must divide the image size {h}x{w}, got {patch}")
        if depth < 1 or depth % 2 == 0:
            raise ValueError(f"UViT depth must be odd (in-blocks, a mid-block, out-blocks), got {depth}")
        if dim % heads:
            raise ValueError(f"UViT dim ({dim}) must be divisible by heads ({heads})")
        self.shape, self.patch = (c, h, w), patch
        tokens = (h // patch) * (w // patch)
        self.embed = nn.Conv2d(c, dim, patch, stride=patch)
        self.time = TimeEmbedding(dim, dim)
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        half = depth // 2
        self.ins = nn.ModuleList(Block(dim, heads, mlp_ratio, skip=False) for _ in range(half))
        self.mid = Block(dim, heads, mlp_ratio, skip=False)
        self.outs = nn.ModuleList(Block(dim, heads, mlp_ratio, skip=True) for _ in range(half))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch * patch * c)
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        if cond:
            raise TypeError(f"UViT takes no conditioning inputs, got {sorted(cond)}")
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"UViT input must have shape (B, *{self.shape}), got {tuple(x.shape)}")
        c, h, w = self.shape
        p = self.patch
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([self.time(time_like(t, x))[:, None], tokens], dim=1) + self.pos
        skips = []
        for block in self.ins:
            z = block(z)
            skips.append(z)
        z = self.mid(z)
        for block in self.outs:
            z = block(z, skips.pop())
        patches = self.head(self.norm(z))[:, 1:]  # drop the time token
        img = patches.reshape(-1, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(-1, c, h, w)
        return self.conv(img)
