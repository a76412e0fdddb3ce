"""``launcher.kind=torchrun``: `nproc` data-parallel workers on this machine (gloo on CPU, nccl on GPU).

The parent process prepares the run folder and runs ``python -m torch.distributed.run
--standalone`` on `sbcore.launch.worker`; SIGTERM/SIGINT/SIGUSR sent to the parent are passed on,
so the workers checkpoint at the next step boundary as a local run does.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from sbcore.config import Config
from sbcore.launch.worker import prepare_run_dir
from sbcore.plugins import Plugins
from sbcore.run import RunLock

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


def torchrun_command(run_dir: Path, nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "sbcore.launch.worker", str(run_dir)]


def run_torchrun(config: Config, config_path: str | None, plugins: Plugins) -> int:
    """Train with `config.launcher.nproc` workers; returns torchrun's exit status."""
    run_dir = prepare_run_dir(config, config_path, plugins)
    with RunLock(run_dir).acquire():
        proc = subprocess.Popen(torchrun_command(run_dir, config.launcher.nproc))
        previous = {sig: signal.signal(sig, lambda signum, _: proc.send_signal(signum)) for sig in FORWARDED}
        try:
            return proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
