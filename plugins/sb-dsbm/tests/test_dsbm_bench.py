"""`sbcore bench gaussian`: configs per variant, matched budgets, the table and its files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sb_dsbm import bench

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.config_text import read_yaml_file
from sbcore.plugins import create_plugins

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "dsbm"


def test_defaults_are_the_example_config():
    example = read_yaml_file(EXAMPLES / "gaussian.yaml")
    assert example.pop("name") == "dsbm-gaussian"  # the bench names each job's run itself
    assert example == bench.DEFAULTS


@pytest.mark.parametrize("variant", ["imf", "ipf", "bm", "sbcfm", "rf"])
def test_budgets_are_matched(tmp_path, variant):
    raw = bench.job_config(bench.DEFAULTS, {"method": {"inner_iters": 300, "outer_iters": 4}}, variant, 20, 1, 0.1,
                           tmp_path)
    config = structure_config(raw, create_plugins().registry)
    assert config.method.schedule.total_steps == 1200
    assert config.data.x0.params == {"dim": 20, "mean": -0.1} and config.seed == 1
    if variant in ("bm", "sbcfm"):
        assert (config.method.outer_iters, config.method.fb_sequence) == (1, ("backward",))
    if variant == "rf":
        assert config.process.params == {"sigma": 0.0} and config.method.fb_sequence == ("backward",)


def test_summary_and_table():
    def values(s):
        return [-0.1, 0.01, 1.0 + s / 100, s / 100, 0.62, 0.618, 0.002, 0.08, 0.010 + s / 1000, 0.02, 0.002, 0.0115]

    rows = [{"variant": "imf", "dim": 20, "seed": s, "steps": 8000, "seconds": 10.0,
             **{f"backward/{k}": v for k, v in zip(bench.KEYS, values(s), strict=True)}} for s in (0, 1)]
    (entry,) = bench.summarise(rows)
    assert entry["var"] == pytest.approx(1.005) and entry["kl_diag"] == pytest.approx(0.0105)
    assert entry["paper_kl"] == pytest.approx(5.05e-3) and entry["reference_code_8k_kl_diag"] == pytest.approx(11.4e-3)
    table = bench.format_tables([entry], sigma=1.0)
    assert "c(sigma=1) = 0.6180" in table and "10.50±0.71 ( 2.00)" in table and "5.05±0.95" in table


def test_cli_rejects_unknown_options(capsys):
    assert main(["bench", "gaussian", "plugin=dsbm", "dimz=5"]) == 2
    assert "dimz" in capsys.readouterr().err
    assert main(["bench", "swiss", "plugin=dsbm"]) == 2


def test_cli_runs_and_writes_csv_and_json(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "gaussian", "plugin=dsbm", "method=imf,bm", "dims=2", "seeds=0", "n=300", f"out={out}",
                 "method.inner_iters=5", "method.outer_iters=2", "method.cache_size=256", "train.eval_samples=100",
                 "network.hidden=16", "sampler.steps=5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "== imf (1 seeds) ==" in printed and "== bm (1 seeds) ==" in printed
    data = json.loads((out / "bench_gaussian.json").read_text())
    assert [r["variant"] for r in data["runs"]] == ["imf", "bm"] and all(r["steps"] == 10 for r in data["runs"])
    assert (out / "bench_gaussian.csv").read_text().splitlines()[0].startswith("variant,dim,seed,steps")


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_configs_are_valid(name):
    config = structure_config(read_yaml_file(EXAMPLES / name), create_plugins().registry)
    assert config.plugin == "dsbm"
