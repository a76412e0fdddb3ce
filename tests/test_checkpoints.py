"""Checkpoints: no pickle, atomic writes, metadata, and bit-identical resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.io import checkpoint as ckpt
from sbcore.launch.local import run_local


def run(raw, plugins, *overrides):
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    return run_local(config, None, plugins)


def final_weights(folder):
    path = ckpt.list_checkpoints(folder / "checkpoints")[-1]
    return load_file(str(path))


def test_flatten_round_trips_optimizer_state():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, tree = ckpt.flatten(opt.state_dict())
    back = ckpt.unflatten(json.loads(json.dumps(tree)), tensors)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    fresh.load_state_dict(back)
    for k in (0, 1):
        assert torch.equal(fresh.state_dict()["state"][k]["exp_avg"], opt.state_dict()["state"][k]["exp_avg"])
    assert fresh.param_groups[0]["lr"] == 0.1


def test_resume_is_bit_identical(tiny_gaussian, plugins, tmp_path):
    straight = {**tiny_gaussian, "name": "straight"}
    run(straight, plugins, "train.steps=20")
    split = {**tiny_gaussian, "name": "split"}
    run(split, plugins, "train.steps=10")
    run(split, plugins, "train.steps=20", "resume=true")
    a = final_weights(tmp_path / "runs" / "straight")
    b = final_weights(tmp_path / "runs" / "split")
    assert a.keys() == b.keys() and any(k.startswith("ema/") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # metrics continue from the resumed step instead of restarting
    steps = [json.loads(line).get("step") for line in (tmp_path / "runs" / "split" / "metrics.jsonl").open()]
    assert 15 in steps and 20 in steps


def test_checkpoint_files_and_metadata(tiny_gaussian, plugins, tmp_path):
    run(tiny_gaussian, plugins, "train.steps=30", "train.checkpoint_every=10", "train.keep_checkpoints=2")
    folder = tmp_path / "runs" / "tiny" / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["step_00000020.safetensors", "step_00000020.state.safetensors",
                     "step_00000030.safetensors", "step_00000030.state.safetensors"]
    with safe_open(str(folder / "step_00000030.safetensors"), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    assert meta["step"] == 30 and meta["plugin"] == "bm" and meta["sbcore_version"]
    assert meta["config"]["train"]["steps"] == 30
    assert meta["networks"]["forward_drift"] == {"kind": "mlp", "hparams": meta["networks"]["forward_drift"]["hparams"]}
    assert meta["networks"]["forward_drift"]["hparams"]["hidden"] == 32


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "ck" / "step_00000001.safetensors"
    with pytest.raises(Exception):  # noqa: B017 - any failure inside save_file
        ckpt.atomic_save({"a": torch.zeros(2), "b": torch.zeros(2)[::2].as_strided((2,), (0,))}, {}, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "step_00000005.safetensors"
    ckpt.atomic_save({"w": torch.ones(3)}, {"step": "5"}, path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ckpt.CheckpointError, match="step_00000005.safetensors"):
        ckpt.load_weights(path)


def test_networks_rebuild_from_checkpoint_alone(tiny_gaussian, plugins, tmp_path):
    run(tiny_gaussian, plugins)
    path = ckpt.list_checkpoints(tmp_path / "runs" / "tiny" / "checkpoints")[-1]
    tensors = load_file(str(path))
    nets = ckpt.load_networks(path, plugins.registry)
    assert set(nets) == {"forward_drift", "backward_drift"}
    net = nets["forward_drift"]
    assert type(net).__name__ == "MLP" and net.hparams["hidden"] == 32
    for name, p in net.named_parameters():
        assert torch.equal(p, tensors[f"ema/forward_drift.{name}"])
    raw = ckpt.load_networks(path, plugins.registry, ema=False)["forward_drift"]
    assert not all(torch.equal(p, q) for p, q in zip(raw.parameters(), net.parameters(), strict=True))
