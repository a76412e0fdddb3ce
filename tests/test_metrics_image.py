"""PSNR, SSIM and MSD on known cases, and SSIM against an independent scipy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch

from sbcore.metrics.image import MSD, PSNR, SSIM, mean_squared_distance, psnr, ssim


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(seed: int, n: int = 3) -> torch.Tensor:
    raw = torch.rand(n, 1, 24, 24, generator=gen(seed), dtype=torch.float64).numpy()
    smooth = torch.from_numpy(scipy.ndimage.gaussian_filter(raw, sigma=(0, 0, 1.2, 1.2)))
    return (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 2 - 1


def ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """Wang et al. (2004) with scipy's Gaussian filter (sigma 1.5, radius 5 = an 11x11 window), valid region."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a):
        return scipy.ndimage.gaussian_filter(a, sigma=1.5, truncate=3.5)[5:-5, 5:-5]

    values = []
    for a, b in zip(x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:]), strict=True):
        ma, mb = blur(a), blur(b)
        va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
        values.append(((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))).mean())
    return float(np.mean(values))


def test_psnr_known_values():
    x = torch.zeros(2, 1, 8, 8)
    assert psnr(x, x + 0.1) == pytest.approx(10 * math.log10(4 / 0.01))
    assert psnr(x, x + 0.1, data_range=1.0) == pytest.approx(20.0)
    assert psnr(x, x) == math.inf
    # per-image PSNR averaged: images with MSE 0.01 and 0.04
    y = torch.cat([x[:1] + 0.1, x[:1] + 0.2])
    assert psnr(x, y) == pytest.approx(0.5 * (10 * math.log10(400) + 10 * math.log10(100)))
    assert PSNR(against="source").reference == "source"
    with pytest.raises(ValueError, match="against"):
        PSNR(against="target")


def test_ssim_known_values():
    x = smooth_images(0)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # constant images: no variance, only the luminance term (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, -0.3, (0.01 * 2) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)) == pytest.approx(expected)


def test_ssim_matches_scipy_reference_and_drops_with_noise():
    x = smooth_images(1)
    noisy = [x + s * torch.randn(x.shape, generator=gen(2), dtype=x.dtype) for s in (0.05, 0.2, 0.5)]
    values = [ssim(x, y) for y in noisy]
    for y, v in zip(noisy, values, strict=True):
        assert v == pytest.approx(ssim_reference(x.numpy(), y.numpy(), 2.0), abs=1e-10)
        assert ssim(y, x) == pytest.approx(v, abs=1e-12)
    assert values[0] > values[1] > values[2]


def test_msd_and_shape_errors():
    x = torch.zeros(4, 1, 5, 5)
    assert mean_squared_distance(x, x + 0.5) == pytest.approx(0.25)
    assert MSD().reference == "source" and not MSD.images_only
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, torch.zeros(4, 1, 5, 6))


def test_psnr_metric_scores_outputs_clipped_to_the_image_range():
    target = torch.zeros(2, 1, 4, 4)
    over = torch.full((2, 1, 4, 4), 3.0)  # clipped to 1: MSE 1, PSNR 10 log10(4)
    g = torch.Generator()
    assert PSNR()(over, target, g) == pytest.approx(10 * math.log10(4.0))
    assert PSNR(clip=False)(over, target, g) == pytest.approx(10 * math.log10(4 / 9))


def test_ssim_metric_equals_ssim_on_unit_pixels():
    """The metric on [-1, 1] images gives SSIM of the same images on [0, 1] (data range 1)."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(3, 1, 16, 16, generator=g)).clamp(-1, 1)
    assert SSIM()(a, b, g) == pytest.approx(ssim((a + 1) / 2, (b + 1) / 2, data_range=1.0), rel=1e-9)
