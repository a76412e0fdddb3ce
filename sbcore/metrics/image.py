"""Row-aligned image metrics: PSNR and SSIM against a reference image, and MSD (input vs output).

Images are (B, C, H, W) tensors with values in a known range (sbcore's convention is [-1, 1], so the
default data range is 2). Each metric is computed per image and averaged over the batch.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from sbcore.metrics.base import Metric, Reference


def _pair(x: Tensor, y: Tensor, images: bool) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape or (images and x.ndim != 4):
        want = "two image batches (B, C, H, W) of one shape" if images else "two batches of one shape"
        raise ValueError(f"expected {want}, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.detach().cpu().double(), y.detach().cpu().double()


def mean_squared_distance(x: Tensor, y: Tensor) -> float:
    """MSD: mean over samples and coordinates of (x − y)², as DSBM reports between a translation's
    input and output (Shi et al. 2023, Sec. 7.2) to measure how much of the input is kept."""
    a, b = _pair(x, y, images=False)
    return float((a - b).square().mean())


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> float:
    """Mean over images of 10 log10(data_range² / MSE_i); identical images give +inf."""
    a, b = _pair(x, y, images=True)
    mse = (a - b).square().flatten(1).mean(1)
    return float((10 * torch.log10(data_range**2 / mse)).mean())


def _gaussian_window(size: int, sigma: float) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-r.square() / (2 * sigma**2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean SSIM (Wang et al. 2004, eq. 13 with the Gaussian window of Sec. III-C): local statistics
    under an 11x11 Gaussian window (σ = 1.5) at every position where it fits (no padding), averaged
    over positions, channels and images. Local variances use the window weights as in the paper
    (no N/(N−1) correction). Images smaller than the window use a window as large as they are."""
    a, b = _pair(x, y, images=True)
    window = min(window, *a.shape[-2:])
    g = _gaussian_window(window, sigma)
    channels = a.shape[1]

    def blur(t: Tensor) -> Tensor:
        t = F.conv2d(t, g.view(1, 1, 1, -1).expand(channels, 1, 1, window), groups=channels)
        return F.conv2d(t, g.view(1, 1, -1, 1).expand(channels, 1, window, 1), groups=channels)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2))
    return float(value.mean())


# ---- registered metrics ---------------------------------------------------------------------------


class MSD(Metric):
    """Mean squared distance between each input and its translation (lower = more of the input kept)."""

    reference: ClassVar[Reference] = "source"

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        return mean_squared_distance(generated, reference)


class _AgainstReference(Metric):
    images_only = True

    def __init__(self, data_range: float = 2.0, against: str = "paired", clip: bool = True) -> None:
        if against not in ("paired", "source"):
            raise ValueError(f"against must be 'paired' (the true partner) or 'source' (the input), got {against!r}")
        if not data_range > 0:
            raise ValueError(f"data_range must be > 0, got {data_range}")
        self.data_range = data_range
        self.against = against
        self.clip = clip

    def image(self, generated: Tensor) -> Tensor:
        """The outputs as saved images: clipped to [-1, 1] (`clip`), as restoration papers score them."""
        return generated.clamp(-1, 1) if self.clip else generated

    @property
    def reference(self) -> Reference:  # type: ignore[override]
        return self.against  # type: ignore[return-value]


class PSNR(_AgainstReference):
    """PSNR of each output (clipped to [-1, 1] unless ``clip: false``) against its true partner (paired
    data) or its input (`against: source`)."""

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        return psnr(self.image(generated), reference, self.data_range)


class SSIM(_AgainstReference):
    """SSIM of each output against its true partner (paired data) or its input (`against: source`), on
    pixels shifted from [-1, 1] to [0, 2]: SSIM's luminance term is scale- but not shift-invariant, and the
    papers compute it on non-negative intensities, so this equals SSIM on [0, 1] with data range 1."""

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        return ssim(self.image(generated) + 1, reference + 1, self.data_range)
