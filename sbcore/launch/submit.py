"""``launcher.kind=slurm`` and ``submitit-local``: submit the run as a submitit job and return.

Each job task runs `sbcore.launch.worker.SubmititTask`, which joins DDP through the environment
submitit derives from SLURM's (``nodes`` x ``tasks_per_node`` ranks). ``launcher.array`` submits
one run folder per seed as a SLURM job array. ``launch.json`` in each run folder records the job
id and its log files for `sbcore status`. The cluster is always named explicitly: submitit's
auto-detection picks SLURM whenever ``srun`` is on PATH, even without a reachable cluster.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import attrs

from sbcore.config import Config
from sbcore.errors import UserError, require
from sbcore.launch.worker import SubmititTask, prepare_run_dir
from sbcore.plugins import Plugins

CLUSTER = {"slurm": "slurm", "submitit-local": "local"}
LAUNCH_FILE = "launch.json"


def executor_parameters(config: Config, cluster: str) -> dict[str, Any]:
    """submitit parameters from `LauncherConfig` (one task per GPU, else `nproc` tasks per node)."""
    launcher = config.launcher
    params: dict[str, Any] = {
        "timeout_min": launcher.time, "nodes": launcher.nodes, "cpus_per_task": launcher.cpus_per_task,
        "tasks_per_node": launcher.gpus_per_node or launcher.nproc, "name": config.name or config.plugin,
    }
    if launcher.gpus_per_node:
        params["gpus_per_node"] = launcher.gpus_per_node
    if cluster == "slurm":
        optional = {"slurm_partition": launcher.partition, "slurm_account": launcher.account,
                    "slurm_qos": launcher.qos, "slurm_constraint": launcher.constraint, "slurm_mem": launcher.mem}
        params.update({k: v for k, v in optional.items() if v is not None})
    return params


def submit(config: Config, config_path: str | None, plugins: Plugins) -> list[Any]:
    """Prepare the run folder(s), submit, print job ids and log paths; returns submitit jobs."""
    submitit = require("submitit", "slurm", f"launcher.kind={config.launcher.kind}")
    cluster = CLUSTER[config.launcher.kind]
    if cluster == "slurm" and shutil.which("sbatch") is None:  # before any folder is made
        raise UserError("launcher.kind=slurm: this machine has no SLURM (sbatch is not on PATH); run on a "
                        "cluster's login node, or use launcher.kind=local, torchrun or submitit-local")
    base = config.name or (Path(config_path).stem if config_path else config.plugin)
    if config.launcher.array:
        configs = [attrs.evolve(config, seed=s, name=f"{base}-seed{s}") for s in config.launcher.array]
        folder = Path(config.out) / f"{base}-{config.launcher.folder}" / "%j"
    else:
        configs = [attrs.evolve(config, name=base)]
        folder = None
    run_dirs = [prepare_run_dir(c, config_path, plugins) for c in configs]
    folder = folder or run_dirs[0] / config.launcher.folder / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**executor_parameters(config, cluster))
    if len(run_dirs) == 1:
        jobs = [executor.submit(SubmititTask(str(run_dirs[0].resolve())))]
    else:
        with executor.batch():
            jobs = [executor.submit(SubmititTask(str(d.resolve()))) for d in run_dirs]
    with contextlib.suppress(OSError):  # the slurm executor also creates the literal "%j" folder
        folder.rmdir()
    for job, run_dir in zip(jobs, run_dirs, strict=True):
        record = {"kind": config.launcher.kind, "cluster": cluster, "job_id": str(job.job_id),
                  "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
        (run_dir / LAUNCH_FILE).write_text(json.dumps(record, indent=1) + "\n")
        print(f"submitted job {job.job_id} ({cluster}): run folder {run_dir}\n"
              f"  logs: {job.paths.stdout}\n        {job.paths.stderr}\n  state: sbcore status run={run_dir}")
    return jobs


def slurm_job_state(job_id: str) -> str | None:
    """A SLURM job's state from squeue, else sacct, else scontrol (which works without accounting
    for MinJobAge seconds after the end); None when no tool knows the job."""
    import subprocess

    queries = [["squeue", "-h", "-j", job_id, "-o", "%T"], ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
               ["scontrol", "-o", "show", "job", job_id]]
    for cmd in queries:
        if not shutil.which(cmd[0]):
            continue
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            continue
        text = out.stdout.strip()
        if out.returncode or not text:
            continue
        if cmd[0] == "scontrol":
            fields = dict(f.split("=", 1) for f in text.split() if "=" in f)
            return fields.get("JobState")
        return text.splitlines()[0].split()[0]
    return None


def local_job_state(job_id: str) -> str:
    """submitit's local executor uses the PID as the job id (a zombie has ended too)."""
    try:
        stat = Path(f"/proc/{int(job_id)}/stat").read_text()
    except (OSError, ValueError):
        return "NOT RUNNING"
    return "NOT RUNNING" if stat.rsplit(")", 1)[1].split()[0] == "Z" else "RUNNING"
