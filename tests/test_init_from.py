"""`train.init_from`: a run starts from another run's EMA networks, names and shapes checked."""

from __future__ import annotations

import pytest
import torch

from sbcore.config import structure_config
from sbcore.errors import UserError
from sbcore.io import checkpoint as ckpt
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.run import Run
from sbcore.train.bridge_matching import BridgeMatching


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def raw_config(out, name, hidden=16, **extra):
    raw = {
        "plugin": "bm", "name": name, "out": str(out), "seed": 1,
        "data": {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}},
        "network": {"kind": "mlp", "hidden": hidden, "layers": 1, "time_dim": 4},
        "train": {"steps": 6, "batch_size": 8, "lr": 1e-2, "ema_decay": 0.5, "log_every": 100, "eval_samples": 16,
                  "progress": False, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 2},
        "log": {"console": False, "jsonl": False},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


@pytest.fixture(scope="module")
def source(plugins, tmp_path_factory):
    """A finished two-network run whose EMA weights differ from its raw weights."""
    out = tmp_path_factory.mktemp("runs")
    run_local(structure_config(raw_config(out, "source"), plugins.registry), None, plugins)
    return out / "source"


def prepared(plugins, raw, tmp_path) -> BridgeMatching:
    config = structure_config(raw, plugins.registry)
    trainer = BridgeMatching(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer.prepare()
    return trainer


def test_run_starts_from_the_other_runs_ema_weights(plugins, source, tmp_path):
    tensors, _ = ckpt.load_weights(ckpt.list_checkpoints(source / "checkpoints")[-1])
    trainer = prepared(plugins, raw_config(tmp_path, "b", train={"init_from": str(source)}), tmp_path)
    state = trainer.networks.state_dict()
    assert state.keys() == {k[len("model/"):] for k in tensors if k.startswith("model/")}
    for key, value in state.items():
        assert torch.equal(value, tensors.get(f"ema/{key}", tensors[f"model/{key}"])), key
    assert any(not torch.equal(tensors[f"ema/{k}"], tensors[f"model/{k}"]) for k in state if f"ema/{k}" in tensors)
    trainer._build_optimizer()  # the EMA starts from the loaded weights too
    assert all(torch.equal(trainer.ema.shadow[k], p) for k, p in trainer.networks.named_parameters())


def test_a_checkpoint_file_and_a_name_mapping(plugins, source, tmp_path):
    path = ckpt.list_checkpoints(source / "checkpoints")[-1]
    raw = raw_config(tmp_path, "c", method={"directions": ["forward"]},
                     train={"init_from": str(path), "init_map": {"forward_drift": "backward_drift"}})
    trainer = prepared(plugins, raw, tmp_path)
    tensors, _ = ckpt.load_weights(path)
    for key, value in trainer.networks["forward_drift"].named_parameters():
        assert torch.equal(value, tensors[f"ema/backward_drift.{key}"])


def test_mismatched_width_names_the_parameter_and_both_shapes(plugins, source, tmp_path):
    raw = raw_config(tmp_path, "d", hidden=32, train={"init_from": str(source)})
    with pytest.raises(UserError, match=r"parameter forward_drift\.\S+ has shape \(32, \d+\) in this run but "
                                        r"\(16, \d+\) in .*step_00000006\.safetensors"):
        prepared(plugins, raw, tmp_path)


@pytest.mark.parametrize("train, message", [
    ({"init_from": "nowhere"}, "nowhere is neither a run folder nor a checkpoint file"),
    ({"init_map": {"x0_to_x1": "forward_drift"}}, "this run has no network 'x0_to_x1'"),
    ({"init_map": {"forward_drift": "score"}}, "has no network 'score' for this run's 'forward_drift'"),
])
def test_bad_sources_and_names_are_one_clear_error(plugins, source, tmp_path, train, message):
    raw = raw_config(tmp_path, "e", train={"init_from": str(source), **train})
    with pytest.raises(UserError, match=message):
        prepared(plugins, raw, tmp_path)


def test_two_networks_are_clipped_each_on_its_own(plugins, tmp_path):
    """A huge gradient in one network does not shrink the other's step (one parameter group per network)."""
    trainer = prepared(plugins, raw_config(tmp_path, "f", train={"grad_clip": 1.0}), tmp_path)
    trainer._build_optimizer()
    assert [g["name"] for g in trainer.optimizer.param_groups] == ["forward_drift", "backward_drift"]
    for name, scale in (("forward_drift", 1e4), ("backward_drift", 0.3)):
        for p in trainer.networks[name].parameters():
            p.grad = torch.full_like(p, scale / p.numel() ** 0.5 / 6)
    small = [p.grad.clone() for p in trainer.networks["backward_drift"].parameters()]
    norm = trainer.clip_gradients()
    norms = {name: torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.networks[name].parameters()]))
             for name in ("forward_drift", "backward_drift")}
    assert norms["forward_drift"] == pytest.approx(1.0, rel=1e-4)
    assert all(torch.equal(p.grad, g) for p, g in zip(trainer.networks["backward_drift"].parameters(), small,
                                                      strict=True))
    assert float(norm) > 1e3
