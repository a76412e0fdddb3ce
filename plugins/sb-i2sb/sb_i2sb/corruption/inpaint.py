"""Inpainting: a mask of unknown pixels, shown white in the degraded image (I2SB's inpaint-* tasks).

`center` masks the middle quarter of the image ([H/4, 3H/4) x [W/4, 3W/4), 25 % of the pixels). The
free-form tasks use masks of brush strokes covering 10-20 % or 20-30 % of the image. The reference
loads Palette's 10 000 pre-drawn 256x256 masks (Saharia et al. 2022); here they are drawn procedurally
(random polylines of random width, in the style of DeepFill v2's free-form masks, Yu et al. 2019) from
the caller's generator, at any image size, so a seed fixes them.

The network never sees the white hole: `fill_noise` puts fresh Gaussian noise there (the reference's
training and sampling input), and the method trains on masked pixels only and re-imposes the known
pixels after every sampling step.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod

import torch
from torch import Tensor

from sb_i2sb.corruption.base import Corrupted, Corruption


def fill_noise(x1: Tensor, mask: Tensor, noise: Tensor) -> Tensor:
    """x1 with its unknown pixels (mask = 1) replaced by `noise`."""
    return (1 - mask) * x1 + mask * noise


class Inpaint(Corruption):
    """x1 = x0 (1 - m) + m: unknown pixels set to white."""

    @abstractmethod
    def masks(self, n: int, h: int, w: int, generator: torch.Generator | None) -> Tensor:
        """(n, 1, h, w) float masks, 1 = unknown."""

    def mask_of(self, x1: Tensor) -> Tensor:
        """The mask of degraded images given without one (e.g. a user's): their white pixels (1 in every
        channel) are unknown. Known pixels that are white are then regenerated too."""
        return (x1 >= 1).all(dim=1, keepdim=True).to(x1.dtype)

    def apply(self, x0: Tensor, generator: torch.Generator | None) -> Corrupted:
        mask = self.masks(x0.shape[0], *x0.shape[-2:], generator).to(device=x0.device, dtype=x0.dtype)
        return Corrupted(x0 * (1 - mask) + mask, mask)


class CenterMask(Inpaint):
    """inpaint-center: the central half of each side (128x128 at 256)."""

    multiple_of = 4

    def masks(self, n: int, h: int, w: int, generator: torch.Generator | None) -> Tensor:
        mask = torch.zeros(n, 1, h, w)
        mask[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
        return mask

    def mask_of(self, x1: Tensor) -> Tensor:
        return self.masks(x1.shape[0], *x1.shape[-2:], None).to(device=x1.device, dtype=x1.dtype)


def _stroke(mask: Tensor, a: tuple[float, float], b: tuple[float, float], radius: float) -> None:
    """Set the pixels whose centres lie within `radius` of the segment a-b (on its bounding box only)."""
    h, w = mask.shape
    y0, y1 = max(0, int(min(a[0], b[0]) - radius)), min(h, int(max(a[0], b[0]) + radius) + 1)
    x0, x1 = max(0, int(min(a[1], b[1]) - radius)), min(w, int(max(a[1], b[1]) + radius) + 1)
    ys, xs = torch.meshgrid(torch.arange(y0, y1) + 0.5, torch.arange(x0, x1) + 0.5, indexing="ij")
    dy, dx = b[0] - a[0], b[1] - a[1]
    s = (((ys - a[0]) * dy + (xs - a[1]) * dx) / max(dy * dy + dx * dx, 1e-12)).clamp(0, 1)
    mask[y0:y1, x0:x1] |= (ys - a[0] - s * dy) ** 2 + (xs - a[1] - s * dx) ** 2 <= radius**2


def freeform_mask(h: int, w: int, low: float, high: float, generator: torch.Generator | None = None,
                  tries: int = 100) -> Tensor:
    """(h, w) mask of brush strokes whose area fraction lies in [low, high].

    A stroke is a polyline of 2-8 segments from a uniform start point, each segment turning by up to
    90 degrees, of length in [size/16, size/4] and width in [size/32, size/10] (at least 1 px). Strokes
    are drawn segment by segment until a target coverage drawn uniformly from [low, high] is reached; a
    draw that overshoots `high` starts over (at most `tries` times). One number drawn from `generator` seeds it.
    """
    if not 0 < low < high < 1:
        raise ValueError(f"need 0 < low < high < 1 for a free-form mask coverage, got [{low}, {high}]")
    rng = random.Random(int(torch.randint(2**62, (1,), generator=generator)))
    size = min(h, w)
    mask = torch.zeros(h, w, dtype=torch.bool)
    for _ in range(tries):
        target = rng.uniform(low, high) * h * w
        mask.zero_()
        segments_left = 0
        while mask.sum() < target:
            if segments_left == 0:  # start a new stroke
                a = (rng.uniform(0, h), rng.uniform(0, w))
                angle, segments_left = rng.uniform(0, 2 * math.pi), rng.randint(2, 8)
            angle += rng.uniform(-math.pi / 2, math.pi / 2)
            length = rng.uniform(size / 16, size / 4)
            b = (min(max(a[0] + length * math.sin(angle), 0.0), h), min(max(a[1] + length * math.cos(angle), 0.0), w))
            _stroke(mask, a, b, max(1.0, rng.uniform(size / 32, size / 10)) / 2)
            a, segments_left = b, segments_left - 1
        if mask.sum() <= high * h * w:
            return mask.float()
    raise RuntimeError(f"no free-form mask with coverage in [{low}, {high}] after {tries} draws at {h}x{w}")


class FreeformMask(Inpaint):
    """Procedural free-form masks covering a fraction in [low, high] of each image."""

    def __init__(self, low: float = 0.1, high: float = 0.2) -> None:
        if not 0 < low < high < 1:
            raise ValueError(f"need 0 < low < high < 1, got low={low}, high={high}")
        self.low, self.high = low, high

    def masks(self, n: int, h: int, w: int, generator: torch.Generator | None) -> Tensor:
        return torch.stack([freeform_mask(h, w, self.low, self.high, generator) for _ in range(n)])[:, None]


class Freeform1020(FreeformMask):
    """inpaint-freeform1020: 10-20 % of the pixels."""

    def __init__(self) -> None:
        super().__init__(0.1, 0.2)


class Freeform2030(FreeformMask):
    """inpaint-freeform2030: 20-30 % of the pixels."""

    def __init__(self) -> None:
        super().__init__(0.2, 0.3)
