"""Closed-form plan scores for Gaussian data: exact plan samples sit at the floor, an independent coupling
far above it, for isotropic, diagonal and full covariances; a run on a random full-covariance pair prints
them at evaluation instead of the per-dimension Cov(x0, x1) diagonal; the three are registered metrics
that `sbcore eval` computes by name."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.data.gaussian import random_spd
from sbcore.launch.local import run_local
from sbcore.metrics.gaussian import GaussianSB
from sbcore.metrics.gaussian_plan import PLAN_METRICS, SCORES, is_diagonal, plan_floor, plan_scores
from sbcore.metrics.translation import Translation
from sbcore.sampler.base import Trajectory

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


def test_plan_scores_are_registered_metrics_for_sbcore_eval(tiny_gaussian, tmp_path, capsys):
    """`sbcore eval` computes the plan scores by name (and by default on a Gaussian problem); a run
    without a Gaussian problem skips them with the reason."""
    path = tmp_path / "gauss.yaml"
    path.write_text(yaml.safe_dump(tiny_gaussian))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "runs" / "tiny"
    assert main(["eval", f"run={run_dir}", "n=400", "metrics=cbw2_uvp,plan_bw2_uvp"]) == 0
    record = json.loads((run_dir / "eval.json").read_text())
    for direction in ("forward", "backward"):
        for name in ("cbw2_uvp", "plan_bw2_uvp"):
            assert record["metrics"][f"{direction}/{name}"] > record["metrics"][f"{direction}/{name}_floor"] > 0
    assert "cov_rel_error" not in str(record["metrics"])
    capsys.readouterr()
    assert main(["eval", f"run={run_dir}", "n=400"]) == 0  # defaults: vector metrics and the plan scores
    defaults = json.loads((run_dir / "eval.json").read_text())["metrics"]
    assert {"forward/w2", "forward/plan_bw2_uvp", "backward/cov_rel_error_floor"} <= set(defaults)

    moons = {**tiny_gaussian, "name": "moons",
             "data": {"x0": {"source": "toy2d", "name": "moons"}, "x1": {"source": "gaussian", "dim": 2}}}
    path.write_text(yaml.safe_dump(moons))
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert main(["eval", f"run={tmp_path / 'runs' / 'moons'}", "n=100", "metrics=w2,cbw2_uvp"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\n  cbw2_uvp +skipped: needs gaussian sources as data.x0 and data.x1[^\n]*\n", out), out
    assert out.count("skipped: needs gaussian") == 1  # one reason for both directions, said once
    assert "Gaussian plan" not in out


def test_plan_score_metric_matches_plan_scores_in_both_directions():
    """The registered metric is `plan_scores` of the translation's pairs, conditioned on its input side."""
    sb = bridge("full")
    x0, x1 = sb.sample_plan(3000, torch.Generator().manual_seed(4))
    x1 = x1 + 0.1
    metric = PLAN_METRICS["cbw2_uvp"]()
    metric.sb = sb
    for direction, inputs, outputs, given in (("forward", x0, x1, "x0"), ("backward", x1, x0, "x1")):
        tr = Translation(direction, inputs.float(), Trajectory(outputs.float(), None, 1), outputs.float(), None)
        value = metric(outputs, tr, torch.Generator())
        expected = plan_scores(sb, x0.float(), x1.float(), given)["cbw2_uvp"]
        assert value[""] == pytest.approx(expected) and value["floor"] == pytest.approx(
            plan_floor(sb, 3000, given)["cbw2_uvp"])
