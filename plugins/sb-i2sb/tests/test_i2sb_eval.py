"""`sbcore eval` on an sr4x run: PSNR, SSIM, feature distance and FID against reference statistics on
fixed degraded pairs of the test split; the NFE sweep benchmark goes through the same path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.config_text import read_yaml_file
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sr4x_run(tmp_path_factory):
    """The sr4x example config, two training steps of a tiny UNet, and digits statistics of 300 train images."""
    tmp = tmp_path_factory.mktemp("sr4x")
    raw = read_yaml_file(ROOT / "examples" / "i2sb" / "mnist-sr4x-pool.yaml")
    raw.update(out=str(tmp), name="sr4x")
    raw["network"] = {"kind": "unet", "channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "groups": 4}
    raw["train"].update(steps=2, batch_size=4, eval_samples=8, log_every=1, progress=False)
    raw["log"] = {"console": False}
    plugins = create_plugins()
    run_local(structure_config(raw, plugins.registry), None, plugins)
    assert main(["stats", "mnist", "split=train", "n=300", f"out={tmp / 'train.npz'}"]) == 0
    return tmp / "sr4x", tmp / "train.npz"


def test_eval_reports_restoration_scores_on_fixed_test_pairs(sr4x_run, capsys):
    run, reference = sr4x_run
    metrics = f"[psnr, ssim, feature_distance, {{kind: fid, extractor: digits, reference: {reference}}}]"
    assert main(["eval", f"run={run}", "n=16", f"metrics={metrics}", "steps=2"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["split"] == "test" and record["n"] == {"backward": 16} and record["paired"]
    values = record["metrics"]
    for name in ("psnr", "ssim", "feature_distance", "fid", "fid_floor"):
        assert np.isfinite(values[f"backward/{name}"]), name
    assert values["backward/fid_floor"] < values["backward/fid"]  # clean test digits sit nearer the reference
    assert "fid_floor" in capsys.readouterr().out
    assert main(["eval", f"run={run}", "n=16", f"metrics={metrics}", "steps=2"]) == 0  # the same pairs again
    assert json.loads((run / "eval.json").read_text())["metrics"] == values


def test_nfe_sweep_uses_the_evaluation_path(sr4x_run, tmp_path):
    run, reference = sr4x_run
    spec = importlib.util.spec_from_file_location("nfe_sweep", ROOT / "plugins/sb-i2sb/benchmarks/nfe_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    out = tmp_path / "sweep.json"
    assert sweep.main(["--run", str(run), "--nfe", "1", "2", "--n", "16", "--reference", str(reference),
                       "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert list(rows) == ["degraded input", "I2SB NFE 1", "I2SB NFE 2"]
    assert all(r["split"] == "test" and r["n"] == 16 for r in rows.values())
    assert rows["I2SB NFE 2"]["nfe"] == 2 and rows["degraded input"]["fid_floor"] == rows["I2SB NFE 1"]["fid_floor"]
    assert main(["eval", f"run={run}", "n=16", "metrics=psnr", "steps=2"]) == 0  # the sweep's NFE 2 pairs and value
    assert json.loads((run / "eval.json").read_text())["metrics"]["backward/psnr"] == \
        pytest.approx(rows["I2SB NFE 2"]["psnr"])
