"""Inception FID and KID (optional: ``pip install sbcore[fid]``), from Inception weights on local disk only.

The papers' image numbers use the torch-fidelity Inception-v3 (2048-d pool features; Heusel et al.
2017; Bińkowski et al. 2018). Backend: torchmetrics' ``NoTrainInceptionV3``, which *is* torch-fidelity's
``FeatureExtractorInceptionV3`` (a maintained package, the network clean-fid and the papers' FIDs also
use) and, unlike clean-fid, takes its weights from a path we give it, so nothing is fetched at run time.
sbcore never downloads those weights: it looks for the file at ``weights:``, then
``$SBCORE_INCEPTION_WEIGHTS``, then torch-fidelity's usual cache place
(``<torch hub dir>/checkpoints/pt_inception-2015-12-05-6726825d.pth``), and otherwise stops with a
message saying where to put it. The Fréchet distance itself is `sbcore.metrics.features.frechet`, shared
with the digits CNN's offline ``feature_distance`` (whose values are not FIDs) and with reference
statistics from ``sbcore stats``.
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


def extractor(path: str | None) -> Any:
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


class FID(Metric):
    """The Fréchet distance between the features of the generated images and those of the target data, or
    of reference statistics (``reference: FILE`` from ``sbcore stats``; then the target data's own distance
    to them is reported as ``_floor``: what real held-out images score, the floor of the sampling error).

    extractor: inception (FID proper), digits (offline, 28/32 px; not comparable with published FIDs),
    flatten (the values themselves). weights: the Inception weights file."""

    images_only = True
    default_extractor = "inception"

    def __init__(self, extractor: str | None = None, reference: str | None = None, weights: str | None = None,
                 batch_size: int = 200) -> None:
        from sbcore.metrics.features import Stats, make_extractor

        # fails at set-up, not after training, when unavailable
        self.extractor = make_extractor(extractor or self.default_extractor, weights)
        self.images_only = self.extractor.name != "flatten"
        self.reference_file = reference
        self.stats = Stats.load(reference) if reference else None
        if self.stats is not None:
            self.stats.check(self.extractor, reference)
        self.batch_size = batch_size

    def stats_of(self, images: Tensor) -> Any:
        from sbcore.metrics.features import stats_of

        return stats_of(images.split(self.batch_size), self.extractor)

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float | dict[str, float]:
        from sbcore.metrics.features import frechet

        if self.stats is None:
            return frechet(self.stats_of(generated), self.stats_of(reference))
        return {"": frechet(self.stats_of(generated), self.stats),
                "floor": frechet(self.stats_of(reference), self.stats)}


class KID(Metric):
    """Inception KID to the target data (torchmetrics): mean and standard deviation over subsets."""

    images_only = True

    def __init__(self, weights: str | None = None, batch_size: int = 200, subsets: int = 100,
                 subset_size: int = 1000) -> None:
        self.extractor = extractor(weights)  # fails at set-up, not after training, when unavailable
        self.batch_size = batch_size
        self.subsets = subsets
        self.subset_size = subset_size

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> dict[str, float]:
        from torchmetrics.image.kid import KernelInceptionDistance

        size = min(self.subset_size, len(generated), len(reference))
        kid = KernelInceptionDistance(feature=self.extractor, subsets=self.subsets, subset_size=size)
        for images, real in ((reference, True), (generated, False)):
            for chunk in to_uint8_rgb(images).split(self.batch_size):
                kid.update(chunk, real=real)
        mean, std = kid.compute()
        return {"": float(mean), "std": float(std)}
