"""JPEG compression at a fixed quality (I2SB's jpeg-5 and jpeg-10 tasks).

The reference simulates JPEG with a differentiable DCT pipeline (from DDRM); here the images go through
a real codec (torchvision's libjpeg `encode_jpeg` / `decode_jpeg`): pixels are rounded to 8 bits,
grayscale stays one channel, colour uses the codec's chroma subsampling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sb_i2sb.corruption.base import Corrupted, Corruption


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] -> uint8, rounded."""
    return ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class JPEG(Corruption):
    """Encode and decode every image at `quality` (1-100)."""

    def __init__(self, quality: int = 10) -> None:
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        self.quality = quality

    def apply(self, x0: Tensor, generator: torch.Generator | None) -> Corrupted:
        from torchvision.io import decode_jpeg, encode_jpeg  # imported when used: it costs seconds at startup

        decoded = decode_jpeg(encode_jpeg(list(to_uint8(x0)), quality=self.quality))
        x1 = torch.stack(decoded).to(device=x0.device, dtype=x0.dtype) / 127.5 - 1
        return Corrupted(x1)


class JPEG5(JPEG):
    """jpeg-5: quality 5."""

    def __init__(self) -> None:
        super().__init__(quality=5)


class JPEG10(JPEG):
    """jpeg-10: quality 10."""

    def __init__(self) -> None:
        super().__init__(quality=10)
