"""Preemption: turn SIGINT/SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 into "checkpoint at the next step boundary, then stop".

A signal handler only records the signal; the training loop polls `StopRequest.signum` between
steps, where the state is consistent, saves a checkpoint and raises `Preempted`. SIGUSR1/SIGUSR2
(SLURM's ``--signal`` warning before the time limit, submitit's interrupt) also ask for the job
to be requeued; SIGTERM (preemption, ``scontrol requeue``, ``kill``) does not, because whoever
sent it decides whether the job comes back. SIGHUP (the terminal or SSH session closed) is a
SIGTERM: the run checkpoints and says how to resume instead of dying mid-step. A first Ctrl-C
(SIGINT) stops like SIGTERM; a second one raises KeyboardInterrupt at once, without a checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class Preempted(SystemExit):
    """Raised after the preemption checkpoint; exits with 128 + signal number like a killed process.

    A SystemExit, so submitit records no result and the requeued job runs the submission again.
    """

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step
        super().__init__(128 + signum)


class StopRequest:
    """Installs the handlers (main thread only) and restores the previous ones on `close`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            if signum == signal.SIGINT:
                sys.stderr.write("\nsbcore: stopping at the next step with a checkpoint "
                                 "(Ctrl-C again to exit at once)\n")

    def close(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def requeue_slurm_job() -> str | None:
    """Ask SLURM to requeue this job (or array task); returns the id, or None outside SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_job}_{task}" if array_job and task else job
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
    return job_id
