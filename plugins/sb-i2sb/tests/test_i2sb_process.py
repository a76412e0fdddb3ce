"""Tier A of the I2SB spec (i2sb_ddib.md §1.12): schedule golden values, bridge moments, label inversion."""

from __future__ import annotations

import pytest
import torch
from sb_i2sb.process import I2SBBridge

from sbcore.sampler.grids import space_indices

K = [0, 10, 100, 250, 499, 750, 900, 999]
#: spec §1.2, beta_max 0.3: std_fwd, std_bwd, mu_x0, mu_x1, std_sb at the steps K.
GOLDEN_03 = {
    "std_fwd": [0.01000, 0.03329, 0.10420, 0.17315, 0.26554, 0.33366, 0.36111, 0.37554],
    "std_bwd": [0.37554, 0.37419, 0.36095, 0.33345, 0.26589, 0.17274, 0.10365, 0.01000],
    "mu_x0": [0.99929, 0.99215, 0.92307, 0.78763, 0.50066, 0.21138, 0.07612, 0.00071],
    "mu_x1": [0.00071, 0.00785, 0.07693, 0.21237, 0.49934, 0.78862, 0.92388, 0.99929],
    "std_sb": [0.01000, 0.03316, 0.10011, 0.15366, 0.18789, 0.15340, 0.09963, 0.01000],
}
#: beta_max 1.0: std_fwd, std_bwd, std_sb.
GOLDEN_10 = {
    "std_fwd": [0.01000, 0.03353, 0.11156, 0.20282, 0.35137, 0.45417, 0.48454, 0.49692],
    "std_bwd": [0.49692, 0.49589, 0.48439, 0.45390, 0.35199, 0.20224, 0.11089, 0.01000],
    "std_sb": [0.01000, 0.03345, 0.10871, 0.18518, 0.24868, 0.18475, 0.10810, 0.01000],
}


def times(k: list[int] | torch.Tensor, n: int = 1000) -> torch.Tensor:
    return torch.as_tensor(k, dtype=torch.float64) / (n - 1)


@pytest.mark.parametrize(("beta_max", "golden"), [(0.3, GOLDEN_03), (1.0, GOLDEN_10)])
def test_reference_schedule_golden_values(beta_max, golden):
    process = I2SBBridge(beta_max)
    for name, values in golden.items():
        got = process.table(name, times(K))
        assert torch.allclose(got, torch.tensor(values, dtype=torch.float64), atol=6e-6), name


def test_reference_betas_half_mirrored_with_unscaled_start():
    betas = I2SBBridge(0.3).betas
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(1e-4)
    assert betas[499] == pytest.approx(1.8650e-4, rel=1e-4) == betas[500]
    assert float(betas.max()) < 0.3 / 1000  # the peak is not beta_max / N
    assert float(betas.sum()) == pytest.approx(0.14103, abs=1e-5)
    assert float(I2SBBridge(1.0).betas.sum()) == pytest.approx(0.24693, abs=1e-5)
    assert float(I2SBBridge(1.0).betas.max()) == pytest.approx(4.3266e-4, rel=1e-4)
    # the quirk of NVlabs/I2SB issue #11: the start stays 1e-4 per step when the interval changes
    assert float(I2SBBridge(0.3, interval=100).betas[0]) == pytest.approx(1e-4)
    assert float(I2SBBridge(0.3, interval=100, reference_compat=False).betas[0]) == pytest.approx(1e-3, rel=0.05)


def test_inclusive_cumulative_sums():
    process = I2SBBridge(0.3)
    fwd2, bwd2 = process.tables["std_fwd"] ** 2, process.tables["std_bwd"] ** 2
    assert torch.allclose(fwd2 + bwd2, process.betas.sum() + process.betas)
    assert float(process.tables["std_fwd"][0]) == pytest.approx(0.01) == float(process.tables["std_bwd"][-1])
    assert torch.allclose(process.tables["mu_x0"] + process.tables["mu_x1"], torch.ones(1000, dtype=torch.float64))


def test_integrated_schedule_matches_the_continuous_symmetric_bridge():
    """reference_compat false integrates ScheduledBridge('symmetric'); at N = 1000 it is the code's to 5e-4."""
    exact, compat = I2SBBridge(0.3, reference_compat=False), I2SBBridge(0.3)
    from sbcore.process.scheduled import ScheduledBridge

    total = ScheduledBridge("symmetric", 0.1, 0.3).total
    assert float(exact.betas.sum()) == pytest.approx(total, rel=1e-12)
    for name in ("std_fwd", "std_bwd", "std_sb"):
        assert torch.allclose(exact.tables[name], compat.tables[name], rtol=5e-4, atol=1e-5), name


def test_odd_interval_needs_the_integrated_schedule():
    with pytest.raises(ValueError, match="interval must be even"):
        I2SBBridge(interval=999)
    assert I2SBBridge(interval=999, reference_compat=False).grid_size == 999


@pytest.mark.parametrize(("nfe", "grid"), [
    (1, [0, 999]), (2, [0, 500, 999]), (3, [0, 333, 666, 999]), (4, [0, 250, 500, 749, 999]),
    (5, [0, 200, 400, 599, 799, 999]), (10, [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999]),
])
def test_step_grids(nfe, grid):
    from sb_i2sb.sampler import I2SBPosterior

    assert space_indices(1000, nfe + 1) == grid
    t = I2SBPosterior(nfe).time_grid(I2SBBridge(), "backward")
    assert I2SBBridge().index(t).tolist() == grid[::-1]


def test_training_times_cover_every_step_including_zero():
    process = I2SBBridge(interval=10)
    t = process.sample_time(5000, torch.Generator().manual_seed(0))
    assert sorted(set(process.index(t).tolist())) == list(range(10))
    assert torch.allclose(t * 9, (t * 9).round(), atol=1e-5)


@pytest.mark.parametrize("k", [0, 250, 499, 999])
def test_bridge_marginal_moments(k):
    """Monte-Carlo mean and variance of x_k equal mu_x0 x0 + mu_x1 x1 and std_sb^2 (4 sigma); OT-ODE has none."""
    process = I2SBBridge(0.3)
    n = 200_000
    x0, x1 = torch.full((n,), 0.7, dtype=torch.float64), torch.full((n,), -0.4, dtype=torch.float64)
    t = times([k]).expand(n)
    g = torch.Generator().manual_seed(k)
    x = process.sample_bridge(x0, x1, t, noise=torch.randn(n, generator=g, dtype=torch.float64))
    mean = float(process.table("mu_x0", t[0])) * 0.7 - float(process.table("mu_x1", t[0])) * 0.4
    std = float(process.std_sb(t[0]))
    assert abs(float(x.mean()) - mean) < 4 * std / n**0.5
    assert abs(float(x.std()) / std - 1) < 4 * (0.5 / n) ** 0.5
    deterministic = I2SBBridge(0.3, ot_ode=True).sample_bridge(x0, x1, t)
    assert bool((deterministic == deterministic[0]).all()) and float(deterministic[0]) == pytest.approx(mean, abs=1e-12)


def test_label_and_estimate_invert_exactly():
    """label = (x_k - x0) / std_fwd (eq. (12)); x0_hat = x_k - std_fwd label gives x0 back."""
    process = I2SBBridge(0.3)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 3, dtype=torch.float64, generator=g), torch.randn(64, 3, dtype=torch.float64, generator=g)
    t = process.sample_time(64, g).double()
    x_t = process.sample_bridge(x0, x1, t)
    label = process.target("eps", x0, x1, x_t, t, "backward")
    std_fwd = process.std_fwd(t)[:, None]
    assert torch.allclose(label, (x_t - x0) / std_fwd, atol=1e-12)
    assert torch.allclose(process.endpoint("eps", label, x_t, t, "backward"), x0, atol=1e-12)
    # the spec's identity: label = std_fwd/(fwd^2+bwd^2) (x1 - x0) + std_bwd/sqrt(fwd^2+bwd^2) z
    z = (x_t - process.mean(x0, x1, t)) / process.std_sb(t)[:, None]
    total = std_fwd**2 + process.std_bwd(t)[:, None] ** 2
    assert torch.allclose(label, std_fwd / total * (x1 - x0) + process.std_bwd(t)[:, None] / total.sqrt() * z,
                          atol=1e-10)


def test_drift_points_to_the_end_and_ot_ode_has_no_diffusion():
    process, t = I2SBBridge(0.3), times([500])
    u, w = process.drift_coefficients(t, "backward")
    assert float(u) == pytest.approx(float(process.betas[500]) * 999 / float(process.std_fwd(t)) ** 2)
    assert float(w) == -float(u)
    assert float(process.diffusion(t)) > 0 and float(I2SBBridge(ot_ode=True).diffusion(t)) == 0


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="beta_min <= beta_max"):
        I2SBBridge(beta_max=0.05)
    with pytest.raises(ValueError, match="interval must be >= 2"):
        I2SBBridge(interval=1)
