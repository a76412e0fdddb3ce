"""Run a config in this process."""

from __future__ import annotations

from typing import Any

import torch

from sbcore.config import Config
from sbcore.plugins import Plugins
from sbcore.run import prepare_run


def run_local(config: Config, config_path: str | None, plugins: Plugins) -> dict[str, Any]:
    """Check and build everything, then create (or reopen, with resume) the locked run folder and train."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    run, trainer, lock = prepare_run(config, config_path, plugins)
    with lock:
        run.echo(f"run folder: {run.dir}  (plugin {config.plugin}, device {run.device})")
        return trainer.fit()
