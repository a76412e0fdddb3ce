"""Training inside a launched process: a torchrun worker or a submitit task.

The launcher writes the resolved config into a fresh run folder first; every worker then reads
that folder, joins the process group described by its environment and trains. A worker that
finds checkpoints in the folder (a requeued or restarted job) resumes from the newest one.

    python -m sbcore.launch.worker RUN_DIR      # what torchrun starts on each rank
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs
import torch

from sbcore.config import Config, structure_config
from sbcore.config_text import read_yaml_file
from sbcore.io import checkpoint as ckpt
from sbcore.launch import distributed
from sbcore.plugins import Plugins, get_plugins
from sbcore.run import Run, choose_device, prepare_run


def prepare_run_dir(config: Config, config_path: str | None, plugins: Plugins) -> Path:
    """Check the run here (on the CPU), then create the run folder (reopen it with resume) and write
    the resolved config into it; the workers, in other processes, train it."""
    run, _, lock = prepare_run(config, config_path, plugins, device=torch.device("cpu"))
    lock.release()
    return run.dir


def train_in_dir(run_dir: Path, plugins: Plugins | None = None) -> dict[str, Any]:
    """Join the process group (if the environment describes one) and train the run in `run_dir`."""
    plugins = plugins or get_plugins()
    config = structure_config(read_yaml_file(run_dir / "config.yaml"), plugins.registry)
    if ckpt.list_checkpoints(run_dir / "checkpoints") and not config.resume:
        config = attrs.evolve(config, resume=True)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    try:
        device = distributed.init_from_env() or choose_device(config.train.device)
        run = Run(config=config, dir=run_dir, plugins=plugins, device=device)
        if run.is_main:
            run.echo(f"run folder: {run_dir}  (plugin {config.plugin}, device {device}, "
                     f"{distributed.world_size()} process(es))")
        trainer = plugins.registry.get("method", config.plugin)(run)
        return trainer.fit()
    finally:
        distributed.shutdown()


class SubmititTask:
    """The callable submitit pickles: one task of a (possibly multi-task) SLURM or local job."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir

    def __call__(self) -> dict[str, Any]:
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return train_in_dir(Path(self.run_dir))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sbcore.launch.worker RUN_DIR", file=sys.stderr)
        return 2
    train_in_dir(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
