"""The Gaussian-process source draws exact GP functions at any grid size."""

from __future__ import annotations

import math

import pytest
import torch
from sb_dbfs.data import GaussianProcessSource


def test_samples_have_the_gp_mean_and_covariance() -> None:
    source = GaussianProcessSource(size=16, lengthscale=0.1, scale=0.5, amplitude=0.8)
    x = source.sample(40_000, torch.Generator().manual_seed(0))[:, 0].double()
    assert x.shape == (40_000, 16)
    centres = (torch.arange(16, dtype=torch.float64) + 0.5) / 16
    assert torch.allclose(x.mean(0), 0.8 * torch.sin(2 * math.pi * centres), atol=0.02)
    assert torch.allclose(torch.cov(x.T), source.cov, atol=0.01)


def test_the_same_gp_on_finer_grids_and_errors() -> None:
    source = GaussianProcessSource(size=32, lengthscale=0.08)
    fine = source.at(256)
    assert fine.shape == (1, 256) and fine.lengthscale == source.lengthscale
    assert torch.isfinite(fine.sample(4, torch.Generator().manual_seed(0))).all()
    with pytest.raises(ValueError, match="lengthscale: expected a positive number"):
        GaussianProcessSource(lengthscale=0.0)
