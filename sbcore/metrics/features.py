"""Feature extractors and reference statistics: the Fréchet distance of FID (Heusel et al. 2017, eq. 6)
between the Gaussians fitted to the features of two image sets, either both given as images or one
of them as statistics computed once over a whole split (``sbcore stats``).

An extractor has a `name` and an `identity` (its name and the SHA-256 of its weights): a statistics
file records both, and a metric refuses statistics whose identity differs from its own extractor's,
since distances in two feature spaces do not compare. Built-in extractors:

* ``digits`` -- the shipped digits/letters/fashion CNN's 128-d features (`sbcore.metrics.digits`);
  offline, for 28 or 32 px images. Its Fréchet distances are not Inception FIDs.
* ``inception`` -- torch-fidelity's Inception-v3 (2048-d pool features), the network the papers' FIDs
  use, loaded from a local weights file (`sbcore.metrics.inception`).
* ``flatten`` -- the pixels themselves: no network, for low-dimensional data and for checking the
  mathematics (identical sets give 0, a mean shift d of equal covariances gives ||d||²).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import torch
from torch import Tensor

from sbcore.errors import UserError
from sbcore.io.files import atomic_write
from sbcore.metrics.gaussian import bw2


class Extractor:
    """Images (B, C, H, W) in [-1, 1] -> features (B, D); `identity` names the exact network."""

    name: ClassVar[str] = ""

    @property
    def identity(self) -> str:
        return self.name

    def __call__(self, images: Tensor) -> Tensor:
        raise NotImplementedError


class Flatten(Extractor):
    """Each sample's values as its feature vector."""

    name = "flatten"

    def __call__(self, images: Tensor) -> Tensor:
        return images.detach().flatten(1).double().cpu()


class DigitsFeatures(Extractor):
    """The digits CNN's penultimate features (`sbcore.metrics.digits.cnn_outputs`)."""

    name = "digits"

    @property
    def identity(self) -> str:
        from sbcore.metrics.digits import WEIGHTS_SHA256

        return f"digits:{WEIGHTS_SHA256[:16]}"

    def __call__(self, images: Tensor) -> Tensor:
        from sbcore.metrics.digits import cnn_outputs

        return cnn_outputs(images)[0].double()


class InceptionFeatures(Extractor):
    """torch-fidelity's Inception-v3 pool features of uint8 RGB images (`sbcore.metrics.inception`)."""

    name = "inception"

    def __init__(self, weights: str | None = None) -> None:
        from sbcore.metrics.inception import extractor, inception_weights

        self.path = inception_weights(weights)
        self.network = extractor(weights)

    @property
    def identity(self) -> str:
        return f"inception:{hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]}"

    def __call__(self, images: Tensor) -> Tensor:
        from sbcore.metrics.inception import to_uint8_rgb

        with torch.no_grad():
            return self.network(to_uint8_rgb(images)).double().cpu()


EXTRACTORS: dict[str, type[Extractor]] = {e.name: e for e in (Flatten, DigitsFeatures, InceptionFeatures)}


def make_extractor(name: str, weights: str | None = None) -> Extractor:
    if name not in EXTRACTORS:
        raise UserError(f"extractor {name!r}: expected one of {', '.join(EXTRACTORS)}")
    try:
        return InceptionFeatures(weights) if name == "inception" else EXTRACTORS[name]()
    except RuntimeError as exc:  # no weights file or no torchmetrics: the message says what to do
        raise UserError(str(exc)) from None


def default_extractor(shape: tuple[int, ...]) -> str:
    """digits for 28/32 px gray or RGB images (the offline network), inception for other images,
    flatten for vectors."""
    if len(shape) != 3:
        return "flatten"
    return "digits" if shape[0] in (1, 3) and shape[1:] in ((28, 28), (32, 32)) else "inception"


@attrs.frozen
class Stats:
    """Mean (D,) and unbiased covariance (D, D) of n feature vectors, in float64, and who made them."""

    mean: Tensor
    cov: Tensor
    n: int
    extractor: str
    source: str = ""

    def save(self, path: Path) -> Path:
        arrays = {"mu": self.mean.numpy(), "sigma": self.cov.numpy(), "n": np.array(self.n),
                  "extractor": np.array(self.extractor), "source": np.array(self.source)}
        return atomic_write(path, lambda tmp: np.savez(tmp, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> Stats:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"reference statistics {path} not found (make them with `sbcore stats`)")
        try:
            with np.load(path, allow_pickle=False) as f:
                return cls(torch.from_numpy(f["mu"]).double(), torch.from_numpy(f["sigma"]).double(), int(f["n"]),
                           str(f["extractor"]), str(f["source"]) if "source" in f.files else "")
        except (KeyError, ValueError, OSError) as exc:
            raise UserError(f"{path}: not a statistics file of `sbcore stats` ({exc})") from None

    def check(self, extractor: Extractor, path: Any = "") -> None:
        """Refuse statistics made by another extractor (their distances would not compare)."""
        if self.extractor != extractor.identity:
            raise UserError(f"reference statistics {path} were made with the extractor {self.extractor}, this "
                            f"metric uses {extractor.identity}; make them again with extractor={extractor.name}")


class StatsAccumulator:
    """Running sums of features in float64, so a whole split's statistics need one pass and little memory."""

    def __init__(self) -> None:
        self.n, self.total, self.outer = 0, None, None

    def add(self, features: Tensor) -> None:
        f = features.double()
        if self.total is None:
            self.total, self.outer = f.sum(0), f.T @ f
        else:
            self.total += f.sum(0)
            self.outer += f.T @ f
        self.n += len(f)

    def stats(self, extractor: str, source: str = "") -> Stats:
        if self.n < 2:
            raise UserError(f"statistics need at least 2 items, got {self.n}")
        mean = self.total / self.n
        cov = (self.outer - self.n * torch.outer(mean, mean)) / (self.n - 1)
        return Stats(mean, cov, self.n, extractor, source)


def stats_of(batches: Iterable[Tensor], extractor: Extractor, source: str = "") -> Stats:
    """The feature statistics of all images in `batches`."""
    acc = StatsAccumulator()
    for batch in batches:
        acc.add(extractor(batch))
    return acc.stats(extractor.identity, source)


def frechet(a: Stats, b: Stats) -> float:
    """||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a^½ S_b S_a^½)^½): FID's formula (the Bures-Wasserstein
    distance squared between the fitted Gaussians)."""
    return float(bw2(a.mean, a.cov, b.mean, b.cov))
