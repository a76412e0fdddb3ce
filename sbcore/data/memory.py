"""Finite datasets held in memory in their storage dtype, decoded to float32 on each draw.

Images stay ``uint8`` (one byte per pixel: 60k padded MNIST digits take 61 MB, not 245 MB as float32)
and are mapped to floats by ``value = raw * scale + offset`` only for the rows a batch draws. The same
(storage, scale, offset) triple is what `sbcore shards write` puts into shards, so a source streamed
from shards yields exactly the floats of the in-memory source it was written from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbcore.data.base import PairedSource, Source


def affine_to_range(value_range: tuple[float, float] | list[float], raw_max: float = 255.0) -> tuple[float, float]:
    """(scale, offset) mapping raw 0 -> value_range[0] and raw `raw_max` -> value_range[1]."""
    lo, hi = (float(v) for v in value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range: expected [low, high] with low < high, got {list(value_range)}")
    return (hi - lo) / raw_max, lo


def decode_affine(raw: Tensor, scale: float, offset: float) -> Tensor:
    """float32(raw) * scale + offset, without touching `raw`."""
    if (scale, offset) == (1.0, 0.0):
        return raw.float()
    return raw.to(torch.float32, copy=True).mul_(scale).add_(offset)  # in place on the copy: 2x faster


def hflip_rows(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image (last axis) with probability 1/2, drawn from `generator` (not the global RNG,
    so a resumed run flips exactly as an uninterrupted one)."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    return x


def describe(source: Any) -> str:
    """One line stating a source's side, sample shape and value range (for logs and errors)."""
    side = getattr(source, "side", None)
    value_range = getattr(source, "value_range", None)
    size = f"{len(source)} samples of " if hasattr(source, "__len__") else ""
    span = f" in [{value_range[0]:g}, {value_range[1]:g}]" if value_range is not None else ""
    return f"{getattr(source, 'name', type(source).__name__)}: {size}shape {tuple(source.shape)}{span}" + (
        f", side {side}" if side else "")


class MemorySource(Source, PairedSource):
    """A finite dataset (optionally paired, optionally labelled) drawn uniformly with replacement.

    data: (N, *shape) storage array; `pair`, when given, is the row-aligned x1 of paired data (then
    `sample_pairs` draws rows of both and `sample` refuses, since one side alone is not a pairing).
    labels: (N,) integer class labels, kept for selection and for writing shards.
    scale, offset: the decode map value = raw * scale + offset applied on draw.
    value_range: the [low, high] the decoded values lie in (checked here, stated by `describe`).
    hflip: mirror each drawn image left-right with probability 1/2.
    """

    side: str | None = None

    def __init__(
        self,
        data: np.ndarray | Tensor,
        *,
        name: str,
        scale: float = 1.0,
        offset: float = 0.0,
        labels: np.ndarray | Tensor | None = None,
        pair: np.ndarray | Tensor | None = None,
        value_range: tuple[float, float] | None = None,
        hflip: bool = False,
    ) -> None:
        self.name = name
        self.data = self._check(torch.as_tensor(data), name, "data")
        self.pair = None if pair is None else self._check(torch.as_tensor(pair), name, "x1")
        if self.pair is not None and self.pair.shape != self.data.shape:
            raise ValueError(
                f"{name}: paired arrays must have the same shape, got x0 {tuple(self.data.shape)} "
                f"and x1 {tuple(self.pair.shape)}")
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if self.labels is not None and self.labels.shape != (len(self.data),):
            raise ValueError(f"{name}: expected {len(self.data)} labels, got shape {tuple(self.labels.shape)}")
        self.scale, self.offset, self.hflip = float(scale), float(offset), hflip
        self.shape = tuple(self.data.shape[1:])
        observed = self._observed_range()
        if value_range is not None:
            lo, hi = value_range
            tol = 1e-6 * max(1.0, abs(lo), abs(hi))
            if observed[0] < lo - tol or observed[1] > hi + tol:
                raise ValueError(f"{name}: values span [{observed[0]:g}, {observed[1]:g}], outside the declared "
                                 f"value_range [{lo:g}, {hi:g}]")
        self.value_range = tuple(value_range) if value_range is not None else observed

    @staticmethod
    def _check(data: Tensor, name: str, what: str) -> Tensor:
        if data.ndim < 2:
            raise ValueError(f"{name}: {what} must have shape (N, ...) with at least one feature axis, "
                             f"got shape {tuple(data.shape)}")
        if data.shape[0] == 0 or data[0].numel() == 0:
            raise ValueError(f"{name}: {what} is empty (shape {tuple(data.shape)})")
        if data.is_floating_point() and not torch.isfinite(data).all():
            bad = int((~torch.isfinite(data)).flatten(1).any(1).sum())
            raise ValueError(f"{name}: {what} has NaN or infinite values in {bad} of {len(data)} samples")
        if not (data.is_floating_point() or data.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32)):
            raise ValueError(f"{name}: {what} has dtype {data.dtype}; expected a float or small integer type")
        return data.contiguous()

    def _observed_range(self) -> tuple[float, float]:
        arrays = [self.data] if self.pair is None else [self.data, self.pair]
        lo = min(float(a.min()) for a in arrays) * self.scale + self.offset
        hi = max(float(a.max()) for a in arrays) * self.scale + self.offset
        return (min(lo, hi), max(lo, hi))

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        return describe(self)

    @property
    def paired(self) -> bool:
        return self.pair is not None

    def decode(self, raw: Tensor) -> Tensor:
        """Storage rows -> float32 values."""
        return decode_affine(raw, self.scale, self.offset)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        if self.pair is not None:
            raise ValueError(f"{self.name}: this data is paired (x0 and x1); use it as data.pairs, "
                             "or pick one side (key: x0 or key: x1)")
        idx = torch.randint(len(self), (n,), generator=generator)
        x = self.decode(self.data.index_select(0, idx))
        return hflip_rows(x, generator) if self.hflip else x

    def labels_of_draw(self, n: int, generator: torch.Generator) -> Tensor | None:
        """The labels of the rows `sample(n, generator)` (or `sample_pairs`) draws with an equally seeded
        generator: both draw their row indices first."""
        if self.labels is None:
            return None
        return self.labels[torch.randint(len(self), (n,), generator=generator)]

    def rows(self, start: int, stop: int) -> tuple[Tensor, Tensor | None]:
        """Items start..stop in storage order, unflipped, with their x1 partners for paired data: what
        evaluation over a whole split (``n=all``) reads."""
        x = self.decode(self.data[start:stop])
        return x, None if self.pair is None else self.decode(self.pair[start:stop])

    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.pair is None:
            raise ValueError(f"{self.name}: this data is unpaired; use it as data.x0 or data.x1")
        idx = torch.randint(len(self), (n,), generator=generator)
        return self.decode(self.data.index_select(0, idx)), self.decode(self.pair.index_select(0, idx))


class ShapeOnly(MemorySource):
    """One row of zeros of a recorded per-sample shape `dims` (paired: x0 and x1): the data of a run rebuilt
    to translate the user's inputs (``sbcore sample input=``), which needs the data's shape and range only."""

    def __init__(self, dims: list[int], value_range: tuple[float, float] | None = None, paired: bool = False,
                 ) -> None:
        zeros = torch.zeros(1, *dims)
        super().__init__(zeros, name=f"shape_only{list(dims)}", pair=zeros.clone() if paired else None)
        if value_range is not None:
            self.value_range = (float(value_range[0]), float(value_range[1]))
