"""`sbcore bench gaussian budgets=...`: total step budgets map to the paper's schedule shape, one row each."""

from __future__ import annotations

import pytest
from sb_dsbm import bench

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.config_text import ConfigError
from sbcore.plugins import create_plugins


@pytest.mark.parametrize(("budget", "inner", "outer"),
                         [(8000, 2000, 4), (40_000, 10_000, 4), (100_000, 10_000, 10), (400_000, 10_000, 40)])
def test_budget_schedule(budget, inner, outer):
    assert bench.budget_schedule(budget) == {"inner_iters": inner, "outer_iters": outer}


def test_budget_that_fits_no_schedule_is_named():
    with pytest.raises(ConfigError, match="got 50001"):
        bench.budget_schedule(50_001)


@pytest.mark.parametrize("variant", ["imf", "bm"])
def test_budget_sets_the_total_steps_and_the_run_name(tmp_path, variant):
    raw = bench.job_config(bench.DEFAULTS, {}, variant, 20, 0, 0.1, tmp_path, budget=40_000)
    config = structure_config(raw, create_plugins().registry)
    assert config.method.schedule.total_steps == 40_000 and config.train.steps == 40_000
    assert config.name == f"{variant}-d20-s0-40000"


def test_summary_has_one_row_per_budget():
    rows = [{"variant": "imf", "dim": 20, "seed": s, "steps": steps, "seconds": 1.0, "backward/kl_diag": 0.01}
            for steps in (8000, 40_000) for s in (0, 1)]
    assert [(e["steps"], e["seeds"]) for e in bench.summarise(rows)] == [(8000, 2), (40_000, 2)]


def test_budgets_and_explicit_schedule_are_exclusive(capsys):
    assert main(["bench", "gaussian", "plugin=dsbm", "budgets=8000", "method.inner_iters=5"]) == 2
    assert "give one or the other" in capsys.readouterr().err
