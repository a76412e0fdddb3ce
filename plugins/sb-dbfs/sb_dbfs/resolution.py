"""Resolution transfer: resizing functions between grids, and the spectral Fréchet distance that scores it.

A function sampled at N cell centres has orthonormal DCT-II coefficients X_k ~ sqrt(N) xi_k, xi_k its
coefficient in the cosine basis of L2[0, 1]; so X_k / sqrt(N), the resolution-normalised coefficient, is
comparable across grids (spec dbfs.md, Sec. 8.2). The Fréchet distance between Gaussians fitted to the first
K of them compares generated and target functions at any N.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sbcore.metrics.gaussian import bw2, fit_gaussian
from sbcore.process.spectral import dct


def resize(x: Tensor, size: int) -> Tensor:
    """x (B, C, N) or (B, C, H, W) on a grid of `size` per axis: (bi)linear up, area averaging down."""
    dims = x.ndim - 2
    if dims not in (1, 2):
        raise ValueError(f"resize expects (B, C, N) or (B, C, H, W), got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"resolution: expected a grid size >= 1, got {size}")
    target = (size,) * dims
    if tuple(x.shape[2:]) == target:
        return x
    if all(n >= s for n, s in zip(x.shape[2:], target, strict=True)):
        return F.interpolate(x, size=target, mode="area")
    return F.interpolate(x, size=target, mode="linear" if dims == 1 else "bilinear", align_corners=False)


def normalised_coefficients(x: Tensor, modes: int = 12) -> Tensor:
    """The first `modes` resolution-normalised DCT coefficients X_k / sqrt(N) of 1-D functions (B, C, N),
    flattened over channels to (B, C * modes)."""
    if x.ndim != 3 or x.shape[-1] < modes:
        raise ValueError(f"expected functions (B, C, N) with N >= {modes}, got shape {tuple(x.shape)}")
    return (dct(x.double(), 1)[..., :modes] / math.sqrt(x.shape[-1])).flatten(1)


def spectral_fd(a: Tensor, b: Tensor, modes: int = 12) -> float:
    """Fréchet distance between Gaussians fitted to the first `modes` normalised coefficients of a and b."""
    ca, cb = normalised_coefficients(a, modes), normalised_coefficients(b, modes)
    return float(bw2(*fit_gaussian(ca), *fit_gaussian(cb)))


def draw_at(source: object, n: int, size: int, generator: torch.Generator) -> Tensor:
    """n draws of a data source on a grid of `size`: natively when it offers `at(size)`, else resized."""
    at = getattr(source, "at", None)
    if at is not None:
        return at(size).sample(n, generator)
    return resize(source.sample(n, generator), size)
