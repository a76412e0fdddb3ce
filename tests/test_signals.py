"""Preemption: a signal stops the run at the next step boundary with a checkpoint, and resuming
from it gives exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sbcore import hookimpl
from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.io import checkpoint as ckpt
from sbcore.launch.events import read_events
from sbcore.launch.local import run_local
from sbcore.launch.signals import Preempted
from sbcore.plugins import create_plugins


def _run(raw, plugins, *overrides):
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    return run_local(config, None, plugins)


def _final(run_dir):
    return load_file(str(ckpt.list_checkpoints(run_dir / "checkpoints")[-1]))


def test_sigterm_then_resume_equals_uninterrupted_run(tiny_gaussian, plugins, tmp_path):
    raw = merge(tiny_gaussian, {"train": {"checkpoint_every": 0, "eval_samples": 32, "threads": 1},
                                "sampler": {"kind": "euler_maruyama", "steps": 2}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "sbcore", "run", str(path), "name=killed", "train.steps=1000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = runs / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "no steps"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    events = read_events(runs / "killed")
    stop = events[-1]
    assert stop["event"] == "preempted" and stop["signal"] == "SIGTERM" and stop["requeued"] is None
    steps = stop["step"]
    assert 10 <= steps < 1_000_000
    assert ckpt.list_checkpoints(runs / "killed" / "checkpoints")[-1].name == f"step_{steps:08d}.safetensors"

    _run(raw, plugins, "name=killed", "resume=true", f"train.steps={steps + 7}")
    _run(raw, plugins, "name=straight", f"train.steps={steps + 7}")
    a, b = _final(runs / "straight"), _final(runs / "killed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [e["event"] for e in read_events(runs / "killed")] == ["start", "preempted", "start", "finished"]
    assert read_events(runs / "killed")[2]["step"] == steps


class _SignalAt:
    """Sends `sig` to this process when step `at` is logged."""

    def __init__(self, at: int, sig: int) -> None:
        self.at, self.sig = at, sig

    @hookimpl
    def sbcore_step_end(self, step):
        if step == self.at:
            os.kill(os.getpid(), self.sig)


def test_sigusr1_stops_at_the_next_step_boundary(tiny_gaussian, tmp_path):
    plugins = create_plugins(extra=[_SignalAt(10, signal.SIGUSR1)])
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted) as info:
        _run(tiny_gaussian, plugins, "train.steps=40", "train.checkpoint_every=0")
    assert info.value.code == 128 + signal.SIGUSR1 and info.value.step == 11
    run_dir = tmp_path / "runs" / "tiny"
    assert [p.name for p in ckpt.list_checkpoints(run_dir / "checkpoints")] == ["step_00000011.safetensors"]
    last = read_events(run_dir)[-1]
    assert (last["event"], last["signal"], last["step"]) == ("preempted", "SIGUSR1", 11)
    assert signal.getsignal(signal.SIGUSR1) is before
