"""Every example config of examples/i2sb is valid, and the paired example trains from an npz as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sbcore.config import structure_config
from sbcore.config_text import read_yaml_file
from sbcore.plugins import create_plugins

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "i2sb"


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path, plugins):
    config = structure_config(read_yaml_file(path), plugins.registry)
    assert config.plugin == "i2sb" and config.process.kind == "i2sb" and config.sampler.kind == "i2sb"


def test_paired_example_trains_from_an_npz(tmp_path):
    from sb_i2sb.method import I2SB

    from sbcore.run import Run

    plugins = create_plugins()
    x0 = np.random.default_rng(0).uniform(-1, 1, (16, 1, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "pairs.npz", x0=x0, x1=x0[:, :, ::-1].copy())
    raw = read_yaml_file(EXAMPLES / "paired-npz.yaml")
    raw["data"]["pairs"]["path"] = str(tmp_path / "pairs.npz")
    raw["train"]["batch_size"] = 4
    trainer = I2SB(Run(config=structure_config(raw, plugins.registry), dir=tmp_path, plugins=plugins,
                       device=torch.device("cpu")))
    trainer.setup()
    assert torch.isfinite(trainer.training_loss(4))
    assert trainer.sample("backward", torch.as_tensor(x0[:2]), steps=2).x.shape == (2, 1, 32, 32)
