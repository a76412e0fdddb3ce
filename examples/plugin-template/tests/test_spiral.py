"""The example plugin's tests: its network and process pass the core's conformance suites, and its
method trains from the config `sbcore config plugin=power_time` prints."""

from __future__ import annotations

import sb_spiral.plugin
import torch
import yaml
from sb_spiral.network import GatedMLP
from sb_spiral.process import QuadraticBridge

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.example_configs import default_config
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.testing import network_conformance, process_conformance

# one line per component: every check of the suite becomes its own test case
test_gated_mlp = network_conformance(GatedMLP, {"hidden": 8, "time_dim": 4}, shapes=[(2,), (1, 4, 4)])
test_quadratic = process_conformance(QuadraticBridge, {"sigma": 0.7})


def test_the_bridge_has_the_variance_of_its_sde():
    """Var(x_t | x_0, x_1) = sigma^2 B(t)(1 - B(t)) with B(t) = t^2, the closed form of the module docstring."""
    process, t = QuadraticBridge(sigma=0.7), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    a, b, c = process.coefficients(t)
    torch.testing.assert_close(c**2, 0.49 * t**2 * (1 - t**2))
    torch.testing.assert_close(a + b, torch.ones_like(t))


def spiral_plugins():
    """The installed plugins, with this one registered directly when it is not installed."""
    plugins = create_plugins()
    return plugins if plugins.pm.get_plugin("spiral") is not None else create_plugins(extra=[sb_spiral.plugin])


def test_the_method_trains_from_its_printed_config(tmp_path):
    plugins = spiral_plugins()
    raw = default_config(plugins, "power_time")
    assert yaml.safe_load(yaml.safe_dump(raw))["process"]["kind"] == "quadratic"
    overrides = parse_overrides([f"out={tmp_path}", "train.steps=5", "train.eval_samples=64", "train.progress=false",
                                 "log.console=false"])
    config = structure_config(merge(raw, overrides), plugins.registry)
    summary = run_local(config, None, plugins)
    assert summary["step"] == 5 and torch.isfinite(torch.tensor(summary["forward/mean_error"]))


def test_training_times_follow_the_power_law(tmp_path):
    """t = u^(1/p) has mean p / (p + 1): 2/3 at p = 2."""
    from sb_spiral.method import PowerTime

    from sbcore.run import Run

    plugins = spiral_plugins()
    config = structure_config(merge(default_config(plugins, "power_time"), {"out": str(tmp_path)}), plugins.registry)
    trainer = PowerTime(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    torch.manual_seed(0)
    t = trainer.sample_t(200_000)
    assert abs(float(t.mean()) - 2 / 3) < 3e-3 and float(t.min()) > 0 and float(t.max()) < 1
