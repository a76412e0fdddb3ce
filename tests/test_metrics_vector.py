"""Sample-based distances against closed forms and an independent implementation (scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from sbcore.config_text import ConfigError
from sbcore.metrics.evaluate import build_metrics, evaluate_samples
from sbcore.metrics.gaussian import bw2
from sbcore.metrics.translation import Translation
from sbcore.metrics.vector import W2, energy_distance, mmd2_rbf, sliced_wasserstein2, wasserstein2
from sbcore.sampler.base import Trajectory


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identical_sets_give_zero():
    x = torch.randn(300, 3, generator=gen(0))
    assert wasserstein2(x, x) == pytest.approx(0.0, abs=1e-6)
    assert sliced_wasserstein2(x, x) == pytest.approx(0.0, abs=1e-9)
    assert mmd2_rbf(x, x, [0.5, 1.0]) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_w2_of_a_translated_copy_is_the_shift():
    # For a translation the identity coupling is optimal: W2(x, x + mu) = |mu| exactly.
    x = torch.randn(400, 2, generator=gen(1), dtype=torch.float64)
    mu = torch.tensor([0.7, -1.9], dtype=torch.float64)
    assert wasserstein2(x, x + mu) == pytest.approx(float(mu.norm()), rel=1e-9)


def test_w2_between_gaussian_samples_matches_bures_wasserstein():
    g = gen(0)
    x = torch.randn(1000, 2, generator=g)
    y = torch.randn(1000, 2, generator=g) * torch.tensor([0.5, 2.0]).sqrt() + torch.tensor([2.0, 1.0])
    cov = torch.diag(torch.tensor([0.5, 2.0]))
    exact = math.sqrt(float(bw2(torch.zeros(2), torch.eye(2), torch.tensor([2.0, 1.0]), cov)))
    assert exact == pytest.approx(2.2929, abs=1e-4)
    assert wasserstein2(x, y) == pytest.approx(exact, rel=0.05)  # sampling error of 1000 points: ~3%


def test_sliced_w2_closed_forms():
    x = torch.randn(500, 2, generator=gen(4))
    mu = torch.tensor([1.0, 2.0])
    # E over unit directions of (theta . mu)^2 = |mu|^2 / d; Monte Carlo error of 1000 directions ~2%
    assert sliced_wasserstein2(x, x + mu, projections=1000) ** 2 == pytest.approx(5.0 / 2, rel=0.06)
    # in 1-D every projection is +-1, so sliced W2 is the exact W2
    a, b = torch.randn(500, 1, generator=gen(5)), 2 * torch.randn(500, 1, generator=gen(6)) + 1
    assert sliced_wasserstein2(a, b, projections=8) == pytest.approx(wasserstein2(a, b), rel=1e-9)


def test_mmd_matches_its_gaussian_expectation():
    # N(0, I) vs N(delta, I) in 2-D, one bandwidth h: E k(X, X') = c, E k(X, Y) = c exp(-|delta|^2 / (2(h^2 + 2))),
    # c = (h^2 / (h^2 + 2))^(d/2); the V-statistic adds 2(1 - c)/n.
    n, h = 2000, 1.0
    x = torch.randn(n, 2, generator=gen(7))
    y = torch.randn(n, 2, generator=gen(8)) + torch.tensor([1.0, 0.0])
    c = h**2 / (h**2 + 2)
    expected = 2 * c * (1 - math.exp(-1 / (2 * (h**2 + 2)))) + 2 * (1 - c) / n
    assert mmd2_rbf(x, y, [h]) == pytest.approx(expected, rel=0.15)
    same = mmd2_rbf(x, torch.randn(n, 2, generator=gen(9)), [h])
    assert 0 < same < expected / 20


def test_energy_distance_matches_scipy_in_1d():
    a = torch.randn(300, 1, generator=gen(10))
    b = 1.5 * torch.randn(200, 1, generator=gen(11)) + 0.5
    reference = scipy.stats.energy_distance(a[:, 0].numpy(), b[:, 0].numpy()) ** 2
    assert energy_distance(a, b) == pytest.approx(reference, rel=1e-9)


def test_w2_metric_subsamples_reproducibly_and_checks_shapes():
    x = torch.randn(3000, 2, generator=gen(12))
    y = torch.randn(3000, 2, generator=gen(13)) + 1
    metric = W2(max_samples=200)
    assert metric(x, y, gen(0)) == metric(x, y, gen(0))
    assert metric(x, y, gen(0)) != metric(x, y, gen(1))
    with pytest.raises(ValueError, match="one space"):
        wasserstein2(x, torch.randn(10, 3))


def test_registered_metrics_and_spec_validation(plugins):
    names = plugins.registry.names("metric")
    for name in ("w2", "sliced_w2", "mmd", "energy", "gaussian_w2", "msd", "psnr", "ssim",
                 "feature_distance", "domain_accuracy", "plan_bw2_uvp", "cbw2_uvp", "cov_rel_error"):
        assert name in names
    built = build_metrics(["w2", {"kind": "mmd", "scales": [1.0]}], plugins.registry)
    assert built["mmd"].scales == (1.0,)
    with pytest.raises(ConfigError) as err:
        build_metrics(["w3", {"kind": "mmd", "scales": "wide"}], plugins.registry)
    text = str(err.value)
    assert "unknown metric 'w3'; available: cbw2_uvp, classifier_accuracy, cov_rel_error, domain_accuracy, energy" \
        in text
    with pytest.raises(ConfigError, match="listed twice"):
        build_metrics(["w2", {"kind": "w2", "max_samples": 10}], plugins.registry)
    assert "metric 'mmd'" in text and "scales" in text


def test_evaluate_samples_names_keys_by_direction(plugins):
    x0 = torch.randn(200, 2, generator=gen(14))
    x1 = torch.randn(200, 2, generator=gen(15)) + 3
    out = Trajectory(x0 + 3, None, 1)
    translations = {"forward": Translation("forward", x0, out, x1, None),
                    "backward": Translation("backward", x1, Trajectory(x1 - 3, None, 1), x0, x1 - 3)}
    metrics = build_metrics(["w2", "msd", "psnr"], plugins.registry)
    values, skipped = evaluate_samples(None, translations, metrics, gen(0))
    assert set(values) == {"forward/w2", "forward/msd", "backward/w2", "backward/msd"}
    assert values["forward/msd"] == pytest.approx(9.0) and values["backward/msd"] == pytest.approx(9.0)
    assert skipped == {"forward/psnr": "needs images (B, C, H, W)", "backward/psnr": "needs images (B, C, H, W)"}
    assert np.isfinite(values["forward/w2"]) and values["forward/w2"] < 0.5
