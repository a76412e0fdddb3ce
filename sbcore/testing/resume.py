"""Exact resume: a run stopped at a checkpoint and resumed ends bit-identical to one never stopped.

Every method with state beyond the weights (a stage schedule, a teacher, a simulation cache and its
random streams) must pass this; plugins call it from their tests with a tiny config.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from sbcore.config import structure_config
from sbcore.io import checkpoint as ckpt
from sbcore.launch.local import run_local


def assert_resume_is_exact(raw: dict[str, Any], plugins: Any, resume_step: int) -> None:
    """Run `raw` (its `train.checkpoint_every` must save at `resume_step`) to the end; copy the run folder,
    keep only the checkpoint of `resume_step`, resume it, and compare the final checkpoints tensor by tensor."""
    run_local(structure_config(raw, plugins.registry), None, plugins)
    full = Path(raw["out"]) / raw["name"]
    resumed = full.with_name(f"{full.name}-resumed")
    shutil.copytree(full, resumed)
    kept = f"step_{resume_step:08d}"
    for path in ckpt.list_checkpoints(resumed / "checkpoints"):
        if not path.name.startswith(kept):
            ckpt.state_path(path).unlink()
            path.unlink()
    assert ckpt.list_checkpoints(resumed / "checkpoints"), f"no checkpoint at step {resume_step} to resume from"
    run_local(structure_config({**raw, "name": resumed.name, "resume": True}, plugins.registry), None, plugins)
    last_full = ckpt.list_checkpoints(full / "checkpoints")[-1]
    last_resumed = ckpt.list_checkpoints(resumed / "checkpoints")[-1]
    assert last_full.name == last_resumed.name, f"resumed run ended at {last_resumed.name}, not {last_full.name}"
    a, b = load_file(str(last_full)), load_file(str(last_resumed))
    assert a.keys() == b.keys(), f"tensors differ: {sorted(set(a) ^ set(b))}"
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs from the uninterrupted one in {different}"
