"""The command line end to end on a tiny Gaussian run: run, sample, config, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from sbcore.cli import main


@pytest.fixture
def finished_run(tiny_gaussian, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_gaussian))
    assert main(["run", str(path)]) == 0
    return tmp_path / "runs" / "tiny"


def test_run_leaves_config_checkpoints_metrics_pictures(finished_run):
    assert (finished_run / "config.yaml").is_file()
    assert sorted(p.name for p in (finished_run / "checkpoints").glob("*.safetensors"))[-2:] == [
        "step_00000020.safetensors", "step_00000020.state.safetensors"]
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20]
    summary = records[-1]["summary"]
    assert summary["step"] == 20 and "forward/mean_error" in summary and "closed_form/cov_x0_x1_diag" in summary
    assert list((finished_run / "pictures").glob("*.png"))


def test_sample_writes_npz(finished_run, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["sample", f"run={finished_run}", "n=50", f"out={out}", "path=true", "steps=7"]) == 0
    arrays = np.load(out)
    assert arrays["x0"].shape == (50, 2) and arrays["x1"].shape == (50, 2)
    assert arrays["path"].shape == (8, 50, 2) and int(arrays["nfe"]) == 7
    np.testing.assert_allclose(arrays["path"][0], arrays["x0"])
    np.testing.assert_allclose(arrays["path"][-1], arrays["x1"])
    assert main(["sample", f"run={finished_run}", "n=10", f"out={out}", "direction=backward"]) == 0
    assert np.load(out)["x0"].shape == (10, 2)


def test_bad_input_exits_2_with_message(tiny_gaussian, tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_gaussian))
    assert main(["run", str(path), "train.stpes=5"]) == 2
    assert "unknown key 'stpes' (did you mean 'steps'?) @ config.train" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing written before validation passes


def test_config_prints_full_defaults():
    out = subprocess.run([sys.executable, "-m", "sbcore", "config", "plugin=bm"], capture_output=True, text=True,
                         check=True).stdout
    config = yaml.safe_load(out)
    assert config["plugin"] == "bm"
    assert config["process"] == {"kind": "brownian", "sigma": 1.0}
    assert config["method"]["coupling"]["kind"] == "sinkhorn" and config["method"]["coupling"]["max_iter"] == 10000
    assert config["train"]["ema_decay"] == 0.999 and config["sampler"]["kind"] == "euler_maruyama"


def test_help_lists_every_command_and_each_command_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    commands = ["run", "sample", "config", "plugins", "eval", "report", "shards", "status", "export"]
    assert all(f"    {name} " in text for name in commands), text
    for name in commands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
    assert "out=DIR/NAME-%06d.tar" in " ".join(capsys.readouterr().out.split())
