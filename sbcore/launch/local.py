"""Run a config in this process."""

from __future__ import annotations

from typing import Any

import torch

from sbcore.config import Config
from sbcore.plugins import Plugins
from sbcore.run import Run, choose_device, run_dir_for


def run_local(config: Config, config_path: str | None, plugins: Plugins) -> dict[str, Any]:
    """Create (or reopen, with resume) the run folder, write the resolved config, train."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    run_dir = run_dir_for(config, config_path)
    run_dir.mkdir(parents=True, exist_ok=config.resume)
    run = Run(config=config, dir=run_dir, plugins=plugins, device=choose_device(config.train.device))
    run.write_config()
    run.echo(f"run folder: {run_dir}  (plugin {config.plugin}, device {run.device})")
    trainer = plugins.registry.get("method", config.plugin)(run)
    return trainer.fit()
