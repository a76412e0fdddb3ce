"""Sample-based distances between two point clouds (2-D toys, Gaussians, flattened images).

All compare two empirical measures with uniform weights; large sets are subsampled (with the
caller's generator, so a value is reproducible) because exact OT and kernel sums are quadratic.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sbcore.metrics.base import Metric, flat64, subsample
from sbcore.metrics.gaussian import bw2, fit_gaussian


def _check(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    a, b = flat64(x), flat64(y)
    if a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"expected two sets of at least 2 points in one space, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return a, b


def wasserstein2(x: Tensor, y: Tensor) -> float:
    """Exact W2 between the empirical measures of x and y: sqrt of POT's network-simplex OT cost
    (`ot.emd2`) under the squared Euclidean ground cost."""
    import ot  # imported on use: keeps `sbcore --help` fast

    a, b = _check(x, y)
    cost = ot.dist(a.numpy(), b.numpy(), metric="sqeuclidean")
    value = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=10_000_000)
    return math.sqrt(max(float(value), 0.0))


def sliced_wasserstein2(x: Tensor, y: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced W2 (Rabin et al. 2011; Bonneel et al. 2015, eq. 2): sqrt of the mean over random unit
    directions θ of W2²(θᵀx, θᵀy), each 1-D W2 exact from sorted projections (POT)."""
    import ot

    a, b = _check(x, y)
    return float(ot.sliced_wasserstein_distance(a.numpy(), b.numpy(), n_projections=projections, p=2, seed=seed))


def mmd2_rbf(x: Tensor, y: Tensor, bandwidths: list[float] | tuple[float, ...]) -> float:
    """Squared MMD with the RBF kernel k(u, v) = mean_h exp(-‖u − v‖² / (2h²)) over several bandwidths,
    as the biased V-statistic (Gretton et al. 2012, eq. 5): the exact MMD² between the two empirical
    measures, so it is ≥ 0 and exactly 0 for identical sets."""
    a, b = _check(x, y)
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be positive, got {list(bandwidths)}")

    def kernel_mean(u: Tensor, v: Tensor) -> Tensor:
        d2 = torch.cdist(u, v).square()
        return torch.stack([torch.exp(-d2 / (2 * h * h)).mean() for h in bandwidths]).mean()

    return float(kernel_mean(a, a) + kernel_mean(b, b) - 2 * kernel_mean(a, b))


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (Székely & Rizzo 2013, eq. 1) between the
    empirical measures (V-statistics); scipy's 1-D `energy_distance` is the square root of this."""
    a, b = _check(x, y)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


# ---- registered metrics ---------------------------------------------------------------------------


class W2(Metric):
    """Exact W2 to the target data on at most `max_samples` points per side."""

    def __init__(self, max_samples: int = 2000) -> None:
        self.max_samples = max_samples

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        return wasserstein2(subsample(generated, self.max_samples, generator),
                            subsample(reference, self.max_samples, generator))


class SlicedW2(Metric):
    """Sliced W2 to the target data (cheap in high dimension, e.g. on flattened images)."""

    def __init__(self, projections: int = 256, max_samples: int = 10000) -> None:
        self.projections = projections
        self.max_samples = max_samples

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        return sliced_wasserstein2(subsample(generated, self.max_samples, generator),
                                   subsample(reference, self.max_samples, generator), self.projections, seed)


class MMD(Metric):
    """Squared RBF MMD to the target data; bandwidths are `scales` times sqrt(dim), so one default fits
    2-D points and flattened images alike and does not move with the data like a median heuristic."""

    def __init__(self, scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0), max_samples: int = 2000) -> None:
        self.scales = tuple(scales)
        self.max_samples = max_samples

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        root_dim = math.sqrt(generated[0].numel())
        return mmd2_rbf(subsample(generated, self.max_samples, generator),
                        subsample(reference, self.max_samples, generator), [s * root_dim for s in self.scales])


class Energy(Metric):
    """Energy distance to the target data."""

    def __init__(self, max_samples: int = 2000) -> None:
        self.max_samples = max_samples

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        return energy_distance(subsample(generated, self.max_samples, generator),
                               subsample(reference, self.max_samples, generator))


class GaussianW2(Metric):
    """Bures–Wasserstein W2² between Gaussians fitted to the generated and the target samples
    (the core's closed form; exact W2² when both sides are Gaussian, a moment check otherwise)."""

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        a, b = _check(generated, reference)
        return float(bw2(*fit_gaussian(a), *fit_gaussian(b)))
