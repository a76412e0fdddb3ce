"""A resolution-free network: the coordinate-based operator transformer of DBFS (Park et al. 2024, Sec. 5).

A Perceiver-IO encoder/decoder (Jaegle et al. 2022) with DiT's adaLN-Zero time conditioning (Peebles and
Xie 2023). Grid values become tokens (value embedding + Fourier features of their coordinates), a fixed
set of latents reads them by cross-attention and mixes by self-attention, and one query per output
coordinate reads the latents back. Nothing depends on the grid size, so one network evaluates a function
on any grid; the output is the predicted end point x1-hat (DBFS's data prediction) on the input's grid.

Departures from the reference code (spec dbfs.md, Sec. 4): coordinates are cell-centred, (i + 1/2) / N, as
the DCT grid of the spectral process is (the reference uses node-centred linspace(0, 1, N)); grids need not
be square; t is scaled by `time_scale` before the sinusoidal embedding (the reference feeds raw t in
[0, 1], where most frequencies barely move); decoder self-attention over all query points (quadratic in
the number of points) is optional.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sbcore.network.base import Network
from sbcore.network.embedding import sinusoidal_embedding, time_like


def cell_coordinates(shape: tuple[int, ...], **like: Any) -> Tensor:
    """Cell centres of a grid on [0, 1]^d: shape (prod(shape), d), row-major like x.flatten()."""
    axes = [(torch.arange(n, **like) + 0.5) / n for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention of queries x on a context, through `scaled_dot_product_attention`."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.out = nn.Linear(width, width), nn.Linear(width, 2 * width), nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


def mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))


class Block(nn.Module):
    """Pre-LN attention + MLP, each modulated and gated by the time embedding (adaLN-Zero).

    Self-attention (`cross=False`) or cross-attention on a context with its own modulation (`cross=True`).
    """

    def __init__(self, width: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.cross = cross
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn, self.mlp = Attention(width, heads), mlp(width)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, (8 if cross else 6) * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None = None) -> Tensor:
        if self.cross:
            sq, cq, sk, ck, gate, sm, cm, gate_m = self.ada(c).chunk(8, dim=-1)
            h = self.attn(modulate(self.norm(x), sq, cq), modulate(self.norm(context), sk, ck))
        else:
            sq, cq, gate, sm, cm, gate_m = self.ada(c).chunk(6, dim=-1)
            h = modulate(self.norm(x), sq, cq)
            h = self.attn(h, h)
        x = x + gate[:, None] * h
        return x + gate_m[:, None] * self.mlp(modulate(self.norm(x), sm, cm))


class ModulatedMLP(nn.Module):
    """x + gate * MLP(modulate(LN(x))): the queries' time conditioning, pointwise (no attention)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm, self.mlp = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6), mlp(width)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None = None) -> Tensor:
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        return x + gate[:, None] * self.mlp(modulate(self.norm(x), shift, scale))


class OperatorTransformer(Network):
    """f_theta(x, t) -> x1-hat on x's grid, for x of shape (B, C, N) (dims 1) or (B, C, H, W) (dims 2).

    shape: the data shape (C, *grid) at the training resolution; only C and the number of axes are used.
    width: token/latent width D; latents: number of latent vectors; heads: attention heads.
    encoder_blocks: cross-attention reads of the grid, each followed by `self_per_cross` latent self-attentions.
    decoder_blocks: cross-attention reads of the latents by the queries, each followed by a query
        self-attention over all grid points when `decoder_self_attention` (the reference 2-D model's choice).
    fourier_features, fourier_scale: Gaussian Fourier features [sin 2 pi p B, cos 2 pi p B] of the
        coordinates p, B ~ N(0, scale^2) of shape (d, fourier_features), fixed by `seed`.
    time_scale: t is multiplied by it before the sinusoidal embedding.
    gradient_checkpointing: recompute blocks in the backward pass (memory for compute; training only).
    """

    inert_arguments = {"gradient_checkpointing": "recomputes blocks in the backward pass: same outputs"}

    def __init__(
        self, shape: tuple[int, ...], width: int = 64, latents: int = 32, heads: int = 4, encoder_blocks: int = 2,
        self_per_cross: int = 1, decoder_blocks: int = 1, decoder_self_attention: bool = False,
        fourier_features: int = 32, fourier_scale: float = 1.0, time_scale: float = 1000.0, seed: int = 0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if len(shape) not in (2, 3) or any(int(s) < 1 for s in shape):
            raise ValueError(f"OperatorTransformer shape: expected (C, N) or (C, H, W), got {tuple(shape)}")
        if width % heads or width < heads:
            raise ValueError(f"OperatorTransformer width ({width}) must be a positive multiple of heads ({heads})")
        for name, value in (("latents", latents), ("encoder_blocks", encoder_blocks),
                            ("decoder_blocks", decoder_blocks), ("fourier_features", fourier_features)):
            if value < 1:
                raise ValueError(f"OperatorTransformer {name} must be >= 1, got {value}")
        self.channels, self.dims = int(shape[0]), len(shape) - 1
        self.time_scale, self.gradient_checkpointing = float(time_scale), gradient_checkpointing
        gen = torch.Generator().manual_seed(seed)
        # fixed by `seed` (a recorded argument), so not part of the state dict
        self.register_buffer("frequencies", fourier_scale * torch.randn(self.dims, fourier_features, generator=gen),
                             persistent=False)
        self.value_embed = nn.Linear(self.channels, width)
        self.position_embed = nn.Linear(2 * fourier_features, width)
        self.query_embed = nn.Linear(2 * fourier_features, width)
        self.time_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.latents = nn.Parameter(torch.randn(latents, width, generator=gen) * 0.02)
        self.encoder = nn.ModuleList()
        for _ in range(encoder_blocks):
            self.encoder.append(Block(width, heads, cross=True))
            self.encoder.extend(Block(width, heads, cross=False) for _ in range(self_per_cross))
        self.decoder = nn.ModuleList()
        for _ in range(decoder_blocks):
            self.decoder.append(Block(width, heads, cross=True))
            if decoder_self_attention:
                self.decoder.append(Block(width, heads, cross=False))
        self.query_block = ModulatedMLP(width)  # queries carry coordinates and time only, no values
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.head = nn.Linear(width, self.channels)
        for layer in (self.final_ada[1], self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def features(self, grid: tuple[int, ...], like: Tensor) -> Tensor:
        """Fourier features of the grid's cell centres, (prod(grid), 2 * fourier_features)."""
        p = cell_coordinates(grid, dtype=like.dtype, device=like.device) @ self.frequencies.to(like.dtype)
        return torch.cat([torch.sin(2 * math.pi * p), torch.cos(2 * math.pi * p)], dim=-1)

    def _run(self, block: nn.Module, x: Tensor, c: Tensor, context: Tensor | None = None) -> Tensor:
        if self.gradient_checkpointing and self.training:
            return checkpoint(block, x, c, context, use_reentrant=False)
        return block(x, c, context)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        if cond:
            raise TypeError(f"OperatorTransformer takes no conditioning inputs, got {sorted(cond)}")
        if x.ndim != self.dims + 2 or x.shape[1] != self.channels:
            raise ValueError(f"OperatorTransformer input must have shape (B, {self.channels}, "
                             f"{'N' if self.dims == 1 else 'H, W'}) on any grid, got {tuple(x.shape)}")
        b, grid = x.shape[0], tuple(x.shape[2:])
        pos = self.features(grid, x)
        tokens = self.value_embed(x.flatten(2).transpose(1, 2)) + self.position_embed(pos)
        c = self.time_embed(sinusoidal_embedding(time_like(t, x), self.latents.shape[1], self.time_scale).to(x.dtype))
        z = self.latents.expand(b, -1, -1)
        for block in self.encoder:
            z = self._run(block, z, c, tokens if block.cross else None)
        q = self._run(self.query_block, self.query_embed(pos).expand(b, -1, -1), c)
        for block in self.decoder:
            q = self._run(block, q, c, z if block.cross else None)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        out = self.head(modulate(self.final_norm(q), shift, scale))
        return out.transpose(1, 2).reshape(b, self.channels, *grid)
