"""Data-source interfaces.

A `Source` is one side of the bridge (x0 or x1): it draws batches with an explicit
`torch.Generator`, so a resumed run draws exactly the batches an uninterrupted one would.
A `PairedSource` yields row-aligned (x0, x1) batches for paired tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor


class Source(ABC):
    """A distribution to draw samples from, of fixed per-sample `shape`."""

    shape: tuple[int, ...]
    #: a distribution sampled afresh on every draw (Gaussians, toy sets): any new draw is held out, so
    #: evaluation needs no test split of it.
    fresh_draws: ClassVar[bool] = False

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw n samples, shape (n, *shape), float32 on the CPU."""


class TensorSource(Source):
    """A finite dataset held in memory; batches are drawn uniformly with replacement."""

    def __init__(self, data: Tensor, name: str = "tensor") -> None:
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"{name}: expected a non-empty array of shape (N, ...), got {tuple(data.shape)}")
        if not torch.isfinite(data).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        self.data = data.float()
        self.shape = tuple(data.shape[1:])

    def __len__(self) -> int:
        return self.data.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        idx = torch.randint(len(self), (n,), generator=generator)
        return self.data[idx]


class PairedSource(ABC):
    """Row-aligned pairs (x0[i], x1[i])."""

    shape: tuple[int, ...]

    @abstractmethod
    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw n pairs, each of shape (n, *shape)."""
