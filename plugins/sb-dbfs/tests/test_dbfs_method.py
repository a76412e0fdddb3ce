"""The dbfs method: alternating endpoint matching on the spectral process, its times, resolution transfer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sb_dbfs.method import DBFS
from sb_dbfs.plugin import sbcore_sample_options
from sb_dbfs.sweep import sweep

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.config_text import ConfigError, read_yaml_file
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.run import Run
from sbcore.sample import load_trainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def raw_config(tmp_path, method=None, **top):
    return {
        "plugin": "dbfs", "name": "t", "out": str(tmp_path / "runs"), "seed": 1,
        "data": {"x0": {"source": "gp", "size": 16, "lengthscale": 0.3},
                 "x1": {"source": "gp", "size": 16, "lengthscale": 0.1, "amplitude": 0.8}},
        "method": {"inner_iters": 3, "outer_iters": 3, "cache_size": 16, "refresh_every": 2, "cache_chunk": 8,
                   **(method or {})},
        "process": {"kind": "spectral", "dims": 1},
        "network": {"kind": "operator_transformer", "width": 16, "latents": 4, "encoder_blocks": 1,
                    "fourier_features": 4},
        "train": {"batch_size": 8, "lr": 1e-3, "ema_decay": 0.5, "log_every": 100, "eval_samples": 16,
                  "progress": False},
        "sampler": {"kind": "exponential", "steps": 4},
        "log": {"console": False, "jsonl": False},
        **top,
    }


def make_trainer(tmp_path, plugins, method=None) -> DBFS:
    config = structure_config(raw_config(tmp_path, method), plugins.registry)
    trainer = DBFS(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer.setup()
    return trainer


def test_times_stop_half_a_step_before_each_directions_end(tmp_path, plugins) -> None:
    trainer = make_trainer(tmp_path, plugins)
    assert trainer.t_max == pytest.approx(1 - 0.5 / 4)
    trainer.stage = trainer.schedule.stage(1)  # forward
    t = trainer.sample_t(4000)
    assert t.min() >= 0 and t.max() < 0.875 and t.max() > 0.86
    trainer.stage = trainer.schedule.stage(0)  # backward: from t = 1 towards 0
    t = trainer.sample_t(4000)
    assert t.max() <= 1 and t.min() > 0.125 and t.min() < 0.14
    assert make_trainer(tmp_path, plugins, {"t_max": 0.5, "cache_steps": 10}).t_max == 0.5
    assert make_trainer(tmp_path, plugins, {"cache_steps": 10}).t_max == pytest.approx(0.95)


def test_defaults_predict_the_end_with_the_mean_loss_and_t_max_is_checked(tmp_path, plugins) -> None:
    config = structure_config(raw_config(tmp_path), plugins.registry)
    assert config.method.predict == "endpoint" and config.method.loss_reduction == "mean"
    assert config.method.fb_sequence == ("backward", "forward")
    with pytest.raises(ConfigError, match="t_max"):
        structure_config(raw_config(tmp_path, {"t_max": 1.5}), plugins.registry)


def test_three_stages_train_and_sample_at_a_finer_grid(tmp_path, plugins) -> None:
    """backward on independent pairs, forward on the backward teacher's cache, backward again; then the
    forward EMA network samples 64-point functions from 16-point training."""
    config = structure_config(raw_config(tmp_path, {"eval_resolutions": [32]}), plugins.registry)
    run_local(config, None, plugins)
    trainer, meta = load_trainer(tmp_path / "runs" / "t")
    x0 = trainer.draw("x0", 5, torch.Generator().manual_seed(0))
    out = trainer.sample("forward", x0, resolution=64)
    assert out.x.shape == (5, 1, 64) and torch.isfinite(out.x).all()
    assert trainer.sample("backward", trainer.draw("x1", 5, torch.Generator()), steps=2).x.shape == (5, 1, 16)
    evaluation = trainer.evaluate()
    assert {"forward@32", "backward@32"} <= set(evaluation.translations)
    assert evaluation.translations["forward@32"].outputs.x.shape == (16, 1, 16)  # resized back to the training grid
    assert "forward@32/mean_error" in evaluation.metrics
    out = tmp_path / "s.npz"
    assert main(["sample", f"run={tmp_path / 'runs' / 't'}", "n=3", "resolution=48", f"out={out}"]) == 0
    assert np.load(out)["x1"].shape == (3, 1, 48)
    rows = list(sweep(tmp_path / "runs" / "t", [16, 32], n=40, modes=8, sampler="euler_maruyama", steps=4))
    assert [r["N"] for r in rows] == [16, 32]
    assert all(r["fd_floor"] >= 0 and r["fd_generated"] >= 0 and np.isfinite(r["fd_source"]) for r in rows)


def test_sample_offers_a_resolution_option_for_dbfs_runs_only(tmp_path, plugins) -> None:
    dbfs = Run(config=structure_config(raw_config(tmp_path), plugins.registry), dir=tmp_path, plugins=plugins,
               device=torch.device("cpu"))
    options = sbcore_sample_options(dbfs)
    assert set(options) == {"resolution"} and options["resolution"][0] is int
    bm = raw_config(tmp_path, plugin="bm", method={})
    bm["method"] = {"directions": ["forward"]}
    other = Run(config=structure_config(bm, plugins.registry), dir=tmp_path, plugins=plugins,
                device=torch.device("cpu"))
    assert sbcore_sample_options(other) is None


@pytest.mark.parametrize("name", ["gp1d", "mnist_emnist", "mnist_emnist_cpu", "afhq64"])
def test_example_configs_are_valid(name, plugins) -> None:
    path = Path(__file__).resolve().parents[3] / "examples" / "dbfs" / f"{name}.yaml"
    config = structure_config(read_yaml_file(path), plugins.registry)
    assert config.plugin == "dbfs" and config.process.kind == "spectral"
