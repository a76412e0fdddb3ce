"""Sampling from a finished (or stopped) run, using the EMA weights of its latest checkpoint."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch

from sbcore.config import ConfigError, read_yaml_file, structure_config
from sbcore.io import checkpoint as ckpt
from sbcore.plugins import get_plugins
from sbcore.run import Run, choose_device
from sbcore.seeding import derive_seeds


@attrs.frozen
class Samples:
    x0: np.ndarray
    x1: np.ndarray
    path: np.ndarray | None
    nfe: int


def load_trainer(run_dir: Path, device: str = "auto"):
    """Rebuild a run's trainer from its config.yaml and load the latest checkpoint's EMA weights."""
    plugins = get_plugins()
    config = structure_config(read_yaml_file(run_dir / "config.yaml"), plugins.registry)
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise ConfigError([f"no checkpoint in {run_dir / 'checkpoints'}"])
    run = Run(config=config, dir=run_dir, plugins=plugins, device=choose_device(device))
    trainer = plugins.registry.get("method", config.plugin)(run)
    trainer.setup()
    tensors, meta = ckpt.load_weights(found[-1])
    ema = {k[4:]: t for k, t in tensors.items() if k.startswith("ema/")}
    trainer.networks.load_state_dict(ema)
    trainer.networks.eval()
    return trainer, meta


def sample_from_run(
    run_dir: Path, n: int, direction: str = "forward", steps: int | None = None,
    keep_path: bool = False, seed: int = 0,
) -> Samples:
    trainer, _ = load_trainer(run_dir)
    torch_seed, data_seed = derive_seeds(seed)
    torch.manual_seed(torch_seed)
    generator = torch.Generator().manual_seed(data_seed)
    start_side = "x0" if direction == "forward" else "x1"
    x_start = trainer.draw(start_side, n, generator)
    traj = trainer.sample(direction, x_start, steps=steps, return_path=keep_path)
    x_start, x_end = x_start.cpu().numpy(), traj.x.cpu().numpy()
    x0, x1 = (x_start, x_end) if direction == "forward" else (x_end, x_start)
    path = traj.path.cpu().numpy() if traj.path is not None else None
    return Samples(x0=x0, x1=x1, path=path, nfe=traj.nfe)
