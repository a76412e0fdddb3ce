"""Sinusoidal time embedding (Vaswani et al. 2017, Sec. 3.5; as used for t in DDPM, Ho et al. 2020, App. B).

Bridges use continuous t in [0, 1]. The standard frequencies 1 / max_period**(i / half) range from 1
down to 1e-4 per unit of input, so on raw t in [0, 1] most channels would barely move (phase change
well below 1 rad for more than half of them) and the network could hardly tell nearby times apart.
Multiplying t by `scale` = 1000 maps [0, 1] onto DDPM's step range 0..1000, where low and high
frequencies both resolve the time grid; DSBM's UNet uses the same `temb_scale=1000`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def time_like(t: Tensor | float, x: Tensor) -> Tensor:
    """t as a vector of shape (B,) on x's device and dtype; a scalar or a (1,) tensor is broadcast."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, x.shape[0])):
        raise ValueError(f"t must have shape ({x.shape[0]},) to match x, got {tuple(t.shape)}")
    return t.reshape(-1).expand(x.shape[0])


def sinusoidal_embedding(t: Tensor, dim: int, scale: float = 1000.0, max_period: float = 10_000.0) -> Tensor:
    """(B,) -> (B, dim): [cos(scale t w_i), sin(scale t w_i)] with w_i = max_period**(-i / half).

    Computed in at least float32: in half precision scale * t would lose the fine time resolution.
    """
    half = dim // 2
    dtype = torch.promote_types(t.dtype, torch.float32)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
    args = scale * t.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:  # odd widths get one constant zero channel
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by Linear-SiLU-Linear, so the network learns its own time code."""

    def __init__(self, dim: int, out_dim: int, scale: float = 1000.0) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"time embedding dim must be >= 2, got {dim}")
        self.dim = dim
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        emb = sinusoidal_embedding(t, self.dim, self.scale)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


def class_labels(label: Tensor | None, batch: int, num_classes: int, device: torch.device,
                 null: bool = True) -> Tensor:
    """Class labels as a (B,) int64 vector in [0, num_classes - 1], or num_classes (the null class) where
    `null` allows it; None means the null class for every row. A bad shape or range raises ValueError."""
    if label is None:
        if not null:
            raise ValueError(f"this network is class-conditional ({num_classes} classes): pass label=")
        return torch.full((batch,), num_classes, dtype=torch.int64, device=device)
    label = torch.as_tensor(label, device=device)
    if label.ndim == 0:
        label = label.expand(batch)
    if label.shape != (batch,) or label.is_floating_point():
        raise ValueError(f"label must be a ({batch},) integer tensor, got {label.dtype} of shape {tuple(label.shape)}")
    top = num_classes + (1 if null else 0)
    if bool(((label < 0) | (label >= top)).any()):
        raise ValueError(f"label must lie in [0, {top - 1}], got values in [{int(label.min())}, {int(label.max())}]")
    return label.long()


class FourierTimeEmbedding(nn.Module):
    """Learned Fourier features [cos 2 pi B t, sin 2 pi B t] with trainable B ~ N(0, scale^2), then
    Linear-SiLU-Linear (Tancik et al. 2020, Sec. 3; Song et al. 2021's Gaussian Fourier projection)."""

    def __init__(self, dim: int, out_dim: int, scale: float = 16.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"Fourier time embedding dim must be even and >= 2, got {dim}")
        self.freqs = nn.Parameter(scale * torch.randn(dim // 2))
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        args = 2 * math.pi * t[:, None].to(self.freqs.dtype) * self.freqs[None, :]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class RawTime(nn.Module):
    """t itself as one input feature, as DSBM's Gaussian-benchmark network concatenates it to x."""

    def forward(self, t: Tensor) -> Tensor:
        return t[:, None]


#: time conditioning of the vector networks: name -> (module factory(dim, scale), feature width(dim)).
TIME_EMBEDDINGS = ("raw", "sinusoidal", "fourier")


def time_embedding(kind: str, dim: int, scale: float | None = None) -> tuple[nn.Module, int]:
    """A time-conditioning module and the width of its output.

    raw: t (width 1); sinusoidal: `TimeEmbedding` (scale default 1000); fourier: `FourierTimeEmbedding`
    (frequency std default 16). Which is best depends on the problem: measure it (benchmarks/).
    """
    if kind == "raw":
        return RawTime(), 1
    if kind == "sinusoidal":
        return TimeEmbedding(dim, dim, 1000.0 if scale is None else scale), dim
    if kind == "fourier":
        return FourierTimeEmbedding(dim, dim, 16.0 if scale is None else scale), dim
    raise ValueError(f"time_embedding must be one of {', '.join(TIME_EMBEDDINGS)}, got {kind!r}")

