"""Closed-form plan scores for Gaussian data: exact plan samples sit at the floor, an independent coupling
far above it, for isotropic, diagonal and full covariances; a run on a random full-covariance pair prints
them at evaluation instead of the per-dimension Cov(x0, x1) diagonal."""

from __future__ import annotations

import pytest
import torch

from sbcore.config import structure_config
from sbcore.data.gaussian import random_spd
from sbcore.launch.local import run_local
from sbcore.metrics.gaussian import GaussianSB
from sbcore.metrics.gaussian_plan import SCORES, is_diagonal, plan_floor, plan_scores

D = 6


def bridge(kind: str, sigma: float = 1.0) -> GaussianSB:
    mean0, mean1 = torch.linspace(-1, 1, D), torch.full((D,), 0.3)
    if kind == "isotropic":
        covs = torch.eye(D), 2.0 * torch.eye(D)
    elif kind == "diagonal":
        covs = torch.diag(torch.linspace(0.5, 2.0, D)), torch.diag(torch.linspace(1.5, 0.3, D))
    else:
        covs = random_spd(D, 1), random_spd(D, 2)
    return GaussianSB(mean0, covs[0], mean1, covs[1], sigma)


@pytest.mark.parametrize("kind", ["isotropic", "diagonal", "full"])
@pytest.mark.parametrize("given", ["x0", "x1"])
def test_exact_plan_samples_give_the_floor_and_independent_pairs_do_not(kind, given):
    sb = bridge(kind)
    n = 20_000
    floor = plan_floor(sb, n, given)
    x0, x1 = sb.sample_plan(n, torch.Generator().manual_seed(11))
    exact = plan_scores(sb, x0, x1, given)
    shuffled = plan_scores(sb, x0, x1[torch.randperm(n, generator=torch.Generator().manual_seed(3))], given)
    for name in SCORES:
        assert 0 <= exact[name] < 3 * floor[name] + 1e-3, (name, exact[name], floor[name])
        assert shuffled[name] > 20 * floor[name], (name, shuffled[name], floor[name])
    assert shuffled["cov_rel_error"] == pytest.approx(1.0, abs=0.05)  # Ĉ ≈ 0: the whole C is missed
    assert is_diagonal(sb) == (kind != "full")


def test_floor_shrinks_like_one_over_n():
    sb = bridge("full")
    small, large = plan_floor(sb, 2_000), plan_floor(sb, 32_000)
    for name in ("plan_bw2_uvp", "cbw2_uvp"):  # squared distances: bias and variance ~ 1/n
        assert 4 < small[name] / large[name] < 64


def test_moment_scores_are_exact_for_a_known_plan_error():
    """A plan whose x1 is shifted by delta: plan BW2² gains |delta|², the conditional mean error is delta."""
    sb = bridge("diagonal")
    x0, x1 = sb.sample_plan(50_000, torch.Generator().manual_seed(0))
    delta = torch.full((D,), 0.2, dtype=torch.float64)
    base, moved = plan_scores(sb, x0, x1), plan_scores(sb, x0, x1 + delta)
    trace = sb.cov0.trace() + sb.cov1.trace()
    added = float(delta.square().sum())
    assert moved["plan_bw2_uvp"] - base["plan_bw2_uvp"] == pytest.approx(100 * added / float(trace), rel=0.05)
    assert moved["cbw2_uvp"] - base["cbw2_uvp"] == pytest.approx(100 * added / float(sb.cov1.trace()), rel=0.05)
    assert moved["cov_rel_error"] == pytest.approx(base["cov_rel_error"])


def test_bad_shapes_are_named():
    sb = bridge("isotropic")
    with pytest.raises(ValueError, match=r"expected two \(n, 6\) arrays"):
        plan_scores(sb, torch.zeros(4, 5), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="given: expected 'x0' or 'x1'"):
        plan_scores(sb, torch.zeros(4, D), torch.zeros(4, D), given="x2")


def test_full_covariance_run_prints_plan_scores(plugins, tmp_path, capsys):
    """A DSBM run on a random full-covariance pair (d=16) scores its plan at evaluation."""
    if "dsbm" not in plugins.registry.names("method"):
        pytest.skip("the sb-dsbm plugin is not installed")
    raw = {
        "plugin": "dsbm", "name": "spd", "out": str(tmp_path), "seed": 0,
        "data": {"x0": {"source": "gaussian", "dim": 16, "mean": -0.1, "spd_seed": 1},
                 "x1": {"source": "gaussian", "dim": 16, "mean": 0.1, "spd_seed": 2}},
        "method": {"variant": "imf", "inner_iters": 20, "outer_iters": 2, "cache_size": 256, "refresh_every": 10},
        "network": {"kind": "mlp", "hidden": 32, "layers": 2},
        "train": {"batch_size": 32, "eval_samples": 500, "progress": False, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 5},
    }
    summary = run_local(structure_config(raw, plugins.registry), None, plugins)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Gaussian plan vs closed-form SB" in text and "cbw2_uvp" in text
    assert "Cov(x0, x1) diagonal" not in text
    for direction in ("forward", "backward"):
        assert summary[f"{direction}/plan_bw2_uvp"] > summary[f"{direction}/plan_bw2_uvp_floor"] > 0
        assert summary[f"{direction}/cbw2_uvp_floor"] > 0
