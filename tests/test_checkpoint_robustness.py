"""Damaged checkpoints: errors name the file and the last good checkpoint; resume falls back to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.io import checkpoint as ckpt
from sbcore.launch.events import read_events
from sbcore.launch.local import run_local


def _run(raw, plugins, *overrides):
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    return run_local(config, None, plugins)


@pytest.fixture
def three_checkpoints(tiny_gaussian, plugins, tmp_path):
    raw = merge(tiny_gaussian, {"train": {"eval_samples": 32}, "sampler": {"kind": "euler_maruyama", "steps": 2}})
    _run(raw, plugins, "train.steps=30", "train.checkpoint_every=10")
    folder = tmp_path / "runs" / "tiny" / "checkpoints"
    assert [ckpt._step_of(p) for p in ckpt.list_checkpoints(folder)] == [10, 20, 30]
    return raw, folder


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_truncated_file_names_itself_and_the_last_good_checkpoint(three_checkpoints):
    _, folder = three_checkpoints
    newest = folder / "step_00000030.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    message = rf"cannot read checkpoint {re.escape(str(newest))}: .*the last good checkpoint is .*step_00000020\.safe"
    with pytest.raises(ckpt.CheckpointError, match=message):
        ckpt.load_weights(newest)


def test_flipped_tensor_byte_is_detected_by_the_checksum(three_checkpoints):
    _, folder = three_checkpoints
    state = folder / "step_00000030.state.safetensors"
    _flip_last_byte(state)
    assert load_file(str(state))  # safetensors alone would load the damaged tensors silently
    with pytest.raises(ckpt.CheckpointError, match=r"step_00000030\.state\.safetensors is corrupted \(checksum "
                       r"mismatch\); the last good checkpoint is .*step_00000020\.safetensors"):
        ckpt.load_state(folder / "step_00000030.safetensors")
    assert ckpt.last_good(folder) == folder / "step_00000020.safetensors"


def test_resume_falls_back_to_the_last_good_checkpoint(three_checkpoints, plugins, tmp_path):
    raw, folder = three_checkpoints
    _flip_last_byte(folder / "step_00000030.safetensors")
    (folder / "step_00000020.state.safetensors").write_bytes(b"\x00" * 7)
    _run(raw, plugins, "resume=true", "train.steps=40", "train.checkpoint_every=10")
    assert [e["step"] for e in read_events(folder.parent) if e["event"] == "start"] == [0, 10]
    _run(raw, plugins, "name=straight", "train.steps=40", "train.checkpoint_every=10")
    straight = load_file(str(tmp_path / "runs" / "straight" / "checkpoints" / "step_00000040.safetensors"))
    resumed = load_file(str(folder / "step_00000040.safetensors"))
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_no_readable_checkpoint_lists_every_problem(three_checkpoints, plugins):
    raw, folder = three_checkpoints
    for path in ckpt.list_checkpoints(folder):
        path.write_bytes(b"junk")
    with pytest.raises(ckpt.CheckpointError, match=r"no readable checkpoint in .*\n.*step_00000030.*\n.*step_00000020"):
        _run(raw, plugins, "resume=true", "train.steps=40")


def test_checkpoints_are_never_unpickled():
    """Checkpoint code reads no pickle at all; the one torch.load in sbcore is the restricted reader of user
    ``.pt`` files (sbcore/io/torch_files.py, weights_only=True), which checkpoint code does not use."""
    source = Path(__file__).resolve().parents[1] / "sbcore"
    reader = source / "io" / "torch_files.py"
    checkpoint_code = [source / "io", source / "train", source / "launch", source / "sample.py"]
    files = [p for root in checkpoint_code for p in ([root] if root.is_file() else root.rglob("*.py")) if p != reader]
    assert len(files) > 5
    offenders = [str(p) for p in files if re.search(r"torch\.load\(|pickle\.loads?\(|torch_files", p.read_text())]
    unsafe = r"weights_only\s*=\s*False|pickle\.loads?\("
    anywhere = [str(p) for p in source.rglob("*.py") if re.search(unsafe, p.read_text())]
    loads = [str(p) for p in source.rglob("*.py") if re.search(r"(return|=|\()\s*torch\.load\(", p.read_text())]
    assert offenders == [] and anywhere == [] and loads == [str(reader)]
    assert re.findall(r"return torch\.load\([^)]*\)", reader.read_text()) == [
        'return torch.load(path, map_location="cpu", weights_only=True)']
