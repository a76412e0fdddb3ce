"""The `gaussian` data source: shapes, determinism, moments and covariance choices, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from sbcore.data.gaussian import GaussianSource

F64 = torch.float64


def _mc_tol(samples: torch.Tensor) -> torch.Tensor:
    """Four standard errors of a Monte-Carlo mean, per column."""
    return 4 * samples.std(0) / math.sqrt(samples.shape[0])


def test_gaussian_source_shapes_dtype_and_determinism():
    source = GaussianSource(dim=3, mean=[1.0, 2.0, 3.0], std=0.5)
    assert source.shape == (3,)
    assert source.mean.dtype == F64 and source.cov.dtype == F64
    state = torch.get_rng_state()
    a = source.sample(10, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # only the passed generator is used
    assert a.shape == (10, 3) and a.dtype == torch.float32
    assert torch.equal(a, source.sample(10, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, source.sample(10, torch.Generator().manual_seed(8)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 2, "mean": 0.5, "std": 2.0},
        {"dim": 3, "mean": [1.0, 0.0, -1.0], "spd_seed": 4},
        {"dim": 2, "cov": [[2.0, 0.6], [0.6, 0.5]]},
    ],
)
def test_gaussian_source_sample_moments(kwargs):
    source = GaussianSource(**kwargs)
    x = source.sample(100_000, torch.Generator().manual_seed(0)).double()
    centred = x - x.mean(0)
    products = (centred[:, :, None] * centred[:, None, :]).flatten(1)
    assert ((x.mean(0) - source.mean).abs() < _mc_tol(x)).all()
    assert ((products.mean(0) - source.cov.flatten()).abs() < _mc_tol(products) + 1e-6).all()


def test_gaussian_source_covariance_choices():
    torch.testing.assert_close(GaussianSource(dim=2, std=3.0).cov, 9 * torch.eye(2, dtype=F64))
    torch.testing.assert_close(GaussianSource(dim=2, mean=1.5).mean, torch.full((2,), 1.5, dtype=F64))
    explicit = [[2.0, 0.6], [0.6, 0.5]]
    torch.testing.assert_close(GaussianSource(dim=2, cov=explicit).cov, torch.tensor(explicit, dtype=F64))
    spd = GaussianSource(dim=4, spd_seed=3).cov
    expected_eig = torch.exp(torch.linspace(math.log(0.5), math.log(2.0), 4, dtype=F64)) ** 2
    torch.testing.assert_close(torch.linalg.eigvalsh(spd), expected_eig)
    assert not torch.allclose(spd, torch.diag(torch.diagonal(spd)))  # rotated, not axis-aligned
    torch.testing.assert_close(GaussianSource(dim=4, spd_seed=3).cov, spd)
    assert not torch.allclose(GaussianSource(dim=4, spd_seed=5).cov, spd)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "dim: expected an integer >= 1, got 0"),
        ({"std": -1.0}, "std: expected a positive number, got -1.0"),
        ({"dim": 3, "mean": [1.0, 2.0]}, r"mean: expected a number or a list of 3 numbers \(dim=3\), got 2 numbers"),
        ({"dim": 2, "cov": [[1.0, 0.0, 0.0]] * 3}, r"cov: expected a 2 x 2 matrix \(dim=2\), got shape \(3, 3\)"),
        ({"dim": 2, "cov": [[1.0, 0.0], [0.0]]}, r"cov: expected a 2 x 2 matrix of numbers \(dim=2\), got"),
        (
            {"dim": 2, "cov": [[1.0, 0.3], [0.0, 1.0]]},
            r"cov: expected a symmetric matrix, got max \|cov - cov\^T\| = 0.3",
        ),
        (
            {"dim": 2, "cov": [[1.0, 2.0], [2.0, 1.0]]},
            "cov: expected a positive definite matrix, got smallest eigenvalue -1",
        ),
        ({"dim": 2, "cov": [[1.0, 0.0], [0.0, 1.0]], "spd_seed": 0}, "cov and spd_seed: expected at most one of them"),
        (
            {"dim": 2, "spd_seed": 0, "std": 2.0},
            "std: expected the default 1.0 when cov or spd_seed sets the covariance, got 2.0",
        ),
    ],
)
def test_gaussian_source_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianSource(**kwargs)
