"""The ddib method (one eps-model per domain), its network and `sbcore translate` between two runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from sb_ddib.method import DDIB, EpsModel, Noise
from sb_ddib.network import ResidualMLP
from sb_ddib.translate import cycle_stats

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.plugins import create_plugins
from sbcore.process import VPDiffusion
from sbcore.run import Run
from sbcore.testing import NetworkSuite


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def tiny(tmp_path, name, dataset, **process):
    return {
        "plugin": "ddib", "name": name, "out": str(tmp_path / "runs"), "seed": 0,
        "data": {"x0": {"source": "toy2d", "name": dataset}},
        "process": {"kind": "vp", "steps": 100, **process},
        "network": {"kind": "residual_mlp", "channels": 32, "blocks": 1, "groups": 8, "time_scale": 99},
        "train": {"steps": 10, "batch_size": 64, "log_every": 5, "eval_samples": 100, "progress": False,
                  "threads": 1},
        "sampler": {"kind": "ddim", "steps": 10, "grid": "respaced", "reference_compat": True},
        "log": {"console": False},
    }


def write(tmp_path, raw):
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_paper_sized_network_has_about_three_million_parameters_and_starts_at_zero():
    net = ResidualMLP((2,), channels=256, blocks=3, dropout=0.2)
    assert 3.0e6 < sum(p.numel() for p in net.parameters()) < 3.3e6
    x = torch.randn(5, 2)
    assert torch.equal(net(x, torch.rand(5)), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="multiple of groups"):
        ResidualMLP((2,), channels=48)
    with pytest.raises(ValueError, match="at least 2 per group"):
        ResidualMLP((2,), channels=32)


def test_eps_skip_is_the_exact_eps_of_standard_normal_data_at_any_time():
    """For x0 ~ N(0, I), E[eps | x_t] = b(t) x_t: a zero network with the skip is exact."""
    process = VPDiffusion(steps=100)
    net = ResidualMLP((2,), channels=32, blocks=1, groups=8)
    x, t = torch.randn(4, 2), torch.full((4,), 0.3)
    b = process.coefficients(t)[1]
    assert torch.allclose(EpsModel(net, process, skip=True)(x, t), b[:, None] * x)


def test_training_uses_one_network_on_the_discrete_times(tmp_path, plugins):
    config = structure_config(tiny(tmp_path, "m", "ddib-moons"), plugins.registry)
    trainer = DDIB(Run(config=config, dir=tmp_path / "m", plugins=plugins, device=torch.device("cpu")))
    trainer.setup()
    assert list(trainer.networks) == ["eps"] and trainer.directions == ("forward", "backward")
    assert isinstance(trainer.sources["x1"], Noise) and trainer.sources["x1"].shape == (2,)
    t = trainer.sample_t(1000)
    assert torch.allclose(t * 99, (t * 99).round(), atol=1e-4)


def test_noisy_processes_and_paired_data_are_refused(tmp_path, plugins):
    raw = tiny(tmp_path, "b", "ddib-moons")
    raw["process"] = {"kind": "brownian", "sigma": 1.0}
    assert main(["run", str(write(tmp_path, raw))]) == 2


def test_translate_between_two_runs_writes_outputs_and_the_cycle(tmp_path, capsys):
    for name, dataset in (("moons", "ddib-moons"), ("checker", "ddib-checkerboard")):
        assert main(["run", str(write(tmp_path, tiny(tmp_path, name, dataset)))]) == 0
    summary = json.loads((tmp_path / "runs" / "moons" / "metrics.jsonl").read_text().splitlines()[-1])["summary"]
    assert summary["reconstruction_l2_max"] >= summary["reconstruction_l2_mean"] > 0
    out = tmp_path / "tr"
    runs = tmp_path / "runs"
    assert main(["translate", f"source={runs / 'moons'}", f"target={runs / 'checker'}", "n=50", "steps=5",
                 f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "cycle L2" in printed and "differs: data.x0" in printed
    arrays = np.load(out / "translation.npz")
    assert {"source", "latent", "target", "latent_2", "cycle"} <= set(arrays.files)
    record = json.loads((out / "translation.json").read_text())
    assert record["nfe_per_solve"] == 5 and record["cycle_l2"]["max"] >= record["cycle_l2"]["median"]
    assert (out / "translation.png").is_file()
    np.save(tmp_path / "x.npy", arrays["source"][:7])
    assert main(["translate", f"source={runs / 'moons'}", f"target={runs / 'checker'}", f"input={tmp_path / 'x.npy'}",
                 "steps=3", "cycle=false", f"out={tmp_path / 'tr2'}"]) == 0
    assert np.load(tmp_path / "tr2" / "translation.npz")["target"].shape == (7, 2)


def test_translate_refuses_runs_with_different_latent_conventions(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, tiny(tmp_path, "a", "ddib-moons")))]) == 0
    other = tiny(tmp_path, "b", "ddib-moons")
    other["process"]["steps"] = 200
    assert main(["run", str(write(tmp_path, other))]) == 0
    runs = tmp_path / "runs"
    assert main(["translate", f"source={runs / 'a'}", f"target={runs / 'b'}", "n=10"]) == 2
    assert "do not share the latent convention" in capsys.readouterr().err


def test_cycle_stats_are_per_sample_l2():
    x = torch.zeros(100, 2)
    back = x.clone()
    back[:, 0] = torch.arange(100.0)
    stats = cycle_stats(x, back)
    assert stats["max"] == 99 and stats["mean"] == pytest.approx(49.5) and stats["median"] == 49


@pytest.mark.parametrize("name", ["moons", "checkerboard", "mnist", "mnist_cpu", "fashion_mnist", "fashion_mnist_cpu",
                                  "digits_cpu", "letters_cpu", "mnist_classes_cpu"])
def test_example_configs_are_valid(name, plugins):
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "examples" / "ddib" / f"{name}.yaml"
    config = structure_config(yaml.safe_load(path.read_text()), plugins.registry)
    assert config.plugin == "ddib" and config.process.kind == "vp"


@pytest.mark.parametrize("check", NetworkSuite.checks())
def test_residual_mlp_passes_the_network_conformance_suite(check):
    params = {"channels": 32, "blocks": 1, "groups": 8, "dropout": 0.1}
    NetworkSuite("residual_mlp", params, shapes=[(2,), (5,)]).run(check)
