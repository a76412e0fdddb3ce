"""Launchers: where a run executes (``launcher.kind``): local, torchrun, slurm, submitit-local."""

from __future__ import annotations

from typing import Any


def launch(config: Any, config_path: str | None, plugins: Any) -> int:
    """Run or submit `config` as its launcher says; returns a process exit status."""
    kind = config.launcher.kind
    if config.launcher.array and kind in ("local", "torchrun"):
        from sbcore.config_text import ConfigError

        raise ConfigError([f"launcher.array (one run per seed) needs launcher.kind slurm or submitit-local, "
                           f"not {kind!r} @ config.launcher.array"])
    if kind == "local":
        from sbcore.launch.local import run_local

        run_local(config, config_path, plugins)
        return 0
    if kind == "torchrun":
        from sbcore.launch.torchrun import run_torchrun

        return run_torchrun(config, config_path, plugins)
    from sbcore.launch.submit import submit

    submit(config, config_path, plugins)
    return 0
