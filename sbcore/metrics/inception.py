"""Inception FID and KID (optional: ``pip install sbcore[fid]``), from Inception weights on local disk only.

The papers' image numbers use torchmetrics' FID/KID on the torch-fidelity Inception-v3 (2048-d pool
features; Heusel et al. 2017; Bińkowski et al. 2018). sbcore never downloads those weights: it looks
for the file at ``weights:``, then ``$SBCORE_INCEPTION_WEIGHTS``, then torch-fidelity's usual cache
place (``<torch hub dir>/checkpoints/pt_inception-2015-12-05-6726825d.pth``), and otherwise stops with a
message saying where to put it. For an offline distance on digits/letters/fashion, use
``feature_distance`` (``sbcore.metrics.digits``) instead -- its values are not FIDs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbcore.metrics.base import Metric

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
ENV = "SBCORE_INCEPTION_WEIGHTS"


def inception_weights(path: str | None = None) -> Path:
    """The local Inception weights file, or a RuntimeError saying where it was looked for."""
    candidates = [Path(p) for p in (path, os.environ.get(ENV)) if p]
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RuntimeError(
        f"Inception weights for FID/KID not found (looked at: {', '.join(map(str, candidates))}). sbcore does "
        f"not download them: copy {WEIGHTS_FILE} (torch-fidelity's Inception-v3) to one of these places or set "
        f"{ENV}; for an offline feature distance on digits/letters/fashion use the metric 'feature_distance'."
    )


def _extractor(path: str | None) -> Any:
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as exc:
        raise RuntimeError(f"FID/KID need the optional extra: pip install 'sbcore[fid]' ({exc})") from None
    weights = inception_weights(path)
    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(weights))


def to_uint8_rgb(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """(B, C, H, W) in `value_range` -> (B, 3, H, W) uint8, gray repeated to 3 channels (as DSBM does)."""
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class _InceptionMetric(Metric):
    images_only = True

    def __init__(self, weights: str | None = None, batch_size: int = 200) -> None:
        self.extractor = _extractor(weights)  # fails at set-up, not after training, when unavailable
        self.batch_size = batch_size

    def _fill(self, metric: Any, generated: Tensor, reference: Tensor) -> Any:
        for images, real in ((reference, True), (generated, False)):
            for chunk in to_uint8_rgb(images).split(self.batch_size):
                metric.update(chunk, real=real)
        return metric


class FID(_InceptionMetric):
    """Inception FID to the target data (torchmetrics), with locally available weights."""

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        from torchmetrics.image.fid import FrechetInceptionDistance

        return float(self._fill(FrechetInceptionDistance(feature=self.extractor), generated, reference).compute())


class KID(_InceptionMetric):
    """Inception KID to the target data (torchmetrics): mean and standard deviation over subsets."""

    def __init__(self, weights: str | None = None, batch_size: int = 200, subsets: int = 100,
                 subset_size: int = 1000) -> None:
        super().__init__(weights, batch_size)
        self.subsets = subsets
        self.subset_size = subset_size

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> dict[str, float]:
        from torchmetrics.image.kid import KernelInceptionDistance

        size = min(self.subset_size, len(generated), len(reference))
        kid = KernelInceptionDistance(feature=self.extractor, subsets=self.subsets, subset_size=size)
        mean, std = self._fill(kid, generated, reference).compute()
        return {"": float(mean), "std": float(std)}
