"""``launcher.kind=slurm`` on a real single-node SLURM cluster (munged + slurmctld + slurmd started
here): a short `bm` run completes; a longer one requeued with ``scontrol requeue`` mid-run resumes
from its preemption checkpoint. Skipped, with the reason, when not root or the packages cannot be
installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("submitit")

from sbcore.cli import main  # noqa: E402
from sbcore.launch.events import read_events  # noqa: E402
from sbcore.launch.submit import slurm_job_state  # noqa: E402
from sbcore.log.plugin import read_metrics  # noqa: E402

_spec = importlib.util.spec_from_file_location("slurm_cluster", Path(__file__).with_name("slurm_cluster.py"))
slurm_cluster = importlib.util.module_from_spec(_spec)
sys.modules["slurm_cluster"] = slurm_cluster
_spec.loader.exec_module(slurm_cluster)



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        slurm_cluster.ensure_packages()
    except slurm_cluster.SlurmUnavailable as exc:
        pytest.skip(f"no local SLURM cluster: {exc}")
    local = slurm_cluster.LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture
def slurm_env(cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return cluster


def _submit(raw, tmp_path, capsys, *overrides) -> tuple[Path, str]:
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "launcher.kind=slurm", "launcher.partition=debug", "launcher.time=20",
                 *overrides]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / raw["name"]
    job = json.loads((run_dir / "launch.json").read_text())["job_id"]
    assert f"submitted job {job} (slurm)" in out and "logs: " in out
    return run_dir, job


def _wait_for(condition, seconds, what, run_dir, job=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    logs = "\n".join(p.read_text()[-2000:] for p in (run_dir / "slurm").rglob("*_log.*"))
    events = (run_dir / "events.jsonl").read_text() if (run_dir / "events.jsonl").exists() else ""
    show = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout if job else ""
    pytest.fail(f"{what} after {seconds} s\nevents:\n{events}\nscontrol:\n{show}\njob logs:\n{logs}")


def _logged_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    return [r["step"] for r in read_metrics(path) if "loss" in r] if path.exists() else []


def test_submitit_local_runs_the_same_task(tiny_gaussian, tmp_path, capsys):
    """``launcher.kind=submitit-local``: the SLURM code path in local subprocesses, no cluster needed;
    its two tasks join DDP through the environment submitit describes."""
    from sbcore.launch.submit import local_job_state

    raw = {**tiny_gaussian, "name": "local", "train": {**tiny_gaussian["train"], "threads": 1, "eval_samples": 32}}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "launcher.kind=submitit-local", "launcher.nproc=2"]) == 0
    run_dir = tmp_path / "runs" / "local"
    job = json.loads((run_dir / "launch.json").read_text())["job_id"]
    assert f"submitted job {job} (local)" in capsys.readouterr().out
    _wait_for(lambda: local_job_state(job) == "NOT RUNNING", 120, f"local job {job} did not end", run_dir)
    events = read_events(run_dir)
    assert [e["event"] for e in events] == ["start", "finished"] and events[0]["world_size"] == 2
    assert json.loads((run_dir / "distributed.json").read_text())["per_rank_batch"] == 16
    assert (run_dir / "checkpoints" / "step_00000020.safetensors").is_file()
    assert (run_dir / "slurm" / job / f"{job}_0_log.out").is_file()


@pytest.mark.slurm
def test_short_run_completes(slurm_env, tiny_gaussian, tmp_path, capsys):
    raw = {**tiny_gaussian, "name": "short", "train": {**tiny_gaussian["train"], "threads": 1, "eval_samples": 32}}
    run_dir, job = _submit(raw, tmp_path, capsys)
    _wait_for(lambda: slurm_job_state(job) == "COMPLETED", 150, f"job {job} did not complete", run_dir)
    assert (run_dir / "checkpoints" / "step_00000020.safetensors").is_file()
    assert _logged_steps(run_dir) == [5, 10, 15, 20]
    events = read_events(run_dir)
    assert [e["event"] for e in events] == ["start", "finished"] and events[0]["job"] == job
    assert main(["status", f"run={run_dir}"]) == 0
    assert f"job {job} (slurm): COMPLETED" in capsys.readouterr().out


@pytest.mark.slurm
@pytest.mark.parametrize("how", ["scontrol-requeue", "usr2-self-requeue"])
def test_requeued_job_resumes_from_its_checkpoint(slurm_env, tiny_gaussian, tmp_path, capsys, how):
    """``scontrol requeue`` (SLURM sends SIGTERM and requeues) and SIGUSR2 (SLURM's warning before the
    time limit: the job checkpoints and requeues itself) both resume from the preemption checkpoint."""
    steps = 2000
    train = {**tiny_gaussian["train"], "threads": 1, "eval_samples": 32, "steps": steps, "log_every": 25,
             "checkpoint_every": 0}
    run_dir, job = _submit({**tiny_gaussian, "name": "requeued", "train": train}, tmp_path, capsys)
    _wait_for(lambda: len(_logged_steps(run_dir)) >= 2, 150, "no training progress", run_dir)
    if how == "scontrol-requeue":
        subprocess.run(["scontrol", "requeue", job], check=True, env=slurm_env.env)
    else:
        subprocess.run(["scancel", "--signal=USR2", job], check=True, env=slurm_env.env)

    def released_and_done() -> bool:
        state, reason = slurm_env.job_reason(job)
        # SLURM holds a requeued job for cred_expire seconds (short in this cluster) so the old launch
        # credential lapses first; forcing StartTime=now races that and fails the relaunch.
        if state == "PENDING" and "Held" in reason:  # e.g. "launch failed requeued held"
            subprocess.run(["scontrol", "release", job], env=slurm_env.env)
        final = run_dir / "checkpoints" / f"step_{steps:08d}.safetensors"
        return slurm_job_state(job) == "COMPLETED" and final.exists()

    _wait_for(released_and_done, 200, f"requeued job {job} did not complete", run_dir, job)
    events = read_events(run_dir)
    assert [e["event"] for e in events] == ["start", "preempted", "start", "finished"], events
    first, stop, again, end = events
    if how == "scontrol-requeue":
        assert stop["signal"] == "SIGTERM" and stop["requeued"] is None
    else:
        assert stop["signal"] == "SIGUSR2" and stop["requeued"] == job
    assert 0 < stop["step"] < steps
    assert (first["step"], first["restart"]) == (0, 0)
    assert (again["step"], again["restart"], again["job"]) == (stop["step"], 1, job)  # resumed, not restarted
    assert end["step"] == steps
    logged = _logged_steps(run_dir)
    assert logged == sorted(set(logged)) and logged[-1] == steps  # the step counter only moved forward


@pytest.mark.slurm
def test_array_over_seeds_and_a_two_task_ddp_job(slurm_env, tiny_gaussian, tmp_path, capsys):
    """``launcher.array=[3,4]``: one run folder and one array task per seed; ``launcher.nproc=2``: two
    SLURM tasks that join DDP through submitit's environment."""
    train = {**tiny_gaussian["train"], "threads": 1, "eval_samples": 32}
    path = tmp_path / "arr.yaml"
    path.write_text(yaml.safe_dump({**tiny_gaussian, "name": "arr", "train": train}))
    assert main(["run", str(path), "launcher.kind=slurm", "launcher.partition=debug", "launcher.time=20",
                 "launcher.array=[3,4]"]) == 0
    run_dirs = [tmp_path / "runs" / f"arr-seed{s}" for s in (3, 4)]
    jobs = [json.loads((d / "launch.json").read_text())["job_id"] for d in run_dirs]
    assert len(set(jobs)) == 2 and all("_" in j for j in jobs)  # array task ids: <array job>_<index>
    ddp_dir, ddp_job = _submit({**tiny_gaussian, "name": "ddp", "train": train}, tmp_path, capsys, "launcher.nproc=2")
    for run_dir, job in [*zip(run_dirs, jobs, strict=True), (ddp_dir, ddp_job)]:
        _wait_for(lambda job=job: slurm_job_state(job) == "COMPLETED", 150, f"job {job} did not complete", run_dir, job)
        assert (run_dir / "checkpoints" / "step_00000020.safetensors").is_file()
    seeds = [yaml.safe_load((d / "config.yaml").read_text())["seed"] for d in run_dirs]
    losses = [[r["loss"] for r in read_metrics(d / "metrics.jsonl") if "loss" in r] for d in run_dirs]
    assert seeds == [3, 4] and losses[0] != losses[1]
    assert [e["world_size"] for e in read_events(ddp_dir) if e["event"] == "start"] == [2]
    assert json.loads((ddp_dir / "distributed.json").read_text())["per_rank_batch"] == 16
