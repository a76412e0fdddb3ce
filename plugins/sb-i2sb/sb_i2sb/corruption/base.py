"""The `Corruption` interface: a degradation operator that makes (clean, degraded) pairs on the fly.

Operators act on image batches (B, C, H, W) with values in [-1, 1] and C = 1 or 3, as the I2SB
reference's `corruption/` module does (Liu et al. 2023, Sec. 4; spec i2sb_ddib.md §1.7). The degraded
image keeps the clean image's shape (super-resolution upsamples its low-resolution content back),
so x0 and x1 live in one space, as a bridge needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import attrs
import torch
from torch import Tensor


@attrs.frozen
class Corrupted:
    """x1: the degraded images, shape of the input. mask: (B, 1, H, W) with 1 on unknown pixels
    (inpainting), or None."""

    x1: Tensor
    mask: Tensor | None = None


class Corruption(ABC):
    """`op(x0, generator)` -> `Corrupted`; `generator` drives random operators (free-form masks)."""

    #: side lengths must be multiples of this.
    multiple_of: int = 1

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def check(self, x: Tensor) -> None:
        """One-line errors for inputs an operator cannot take."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{type(self).__name__}: expected images (B, 1 or 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[-1] % self.multiple_of or x.shape[-2] % self.multiple_of:
            raise ValueError(f"{type(self).__name__}: image sides must be multiples of {self.multiple_of}, "
                             f"got {x.shape[-2]}x{x.shape[-1]}")

    def __call__(self, x0: Tensor, generator: torch.Generator | None = None) -> Corrupted:
        self.check(x0)
        return self.apply(x0, generator)

    @abstractmethod
    def apply(self, x0: Tensor, generator: torch.Generator | None) -> Corrupted:
        """Degrade a checked batch."""
