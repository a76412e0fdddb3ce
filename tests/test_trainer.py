"""Loop services: warm-up, EMA, precision, accumulation checks, evaluation isolation."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from sbcore.config import structure_config
from sbcore.config_text import ConfigError, merge, parse_overrides
from sbcore.io import checkpoint as ckpt
from sbcore.launch.local import run_local
from sbcore.train.ema import EMA


def run(raw, plugins, *overrides):
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    return run_local(config, None, plugins)


def weights(run_dir):
    return load_file(str(ckpt.list_checkpoints(run_dir / "checkpoints")[-1]))


def test_ema_update_matches_formula():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, decay=0.9)
    before = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update()
    for k, p in net.named_parameters():
        torch.testing.assert_close(ema.shadow[k], 0.9 * before[k] + 0.1 * p.detach())


def test_ema_with_an_active_network_moves_only_that_network():
    nets = torch.nn.ModuleDict({"forward_drift": torch.nn.Linear(2, 2), "backward_drift": torch.nn.Linear(2, 2)})
    ema = EMA(nets, decay=0.5)
    before = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in nets.parameters():
            p.add_(1.0)
    ema.active = "forward_drift"
    ema.update()
    for k, shadow in ema.shadow.items():
        assert torch.equal(shadow, before[k]) != k.startswith("forward_drift."), k
    ema.active = None  # all networks again
    ema.update()
    assert all(not torch.equal(shadow, before[k]) for k, shadow in ema.shadow.items())


def test_evaluation_does_not_change_training(tiny_gaussian, plugins, tmp_path):
    """Periodic evaluation draws from its own RNG stream: the weights are the same with or without it."""
    run({**tiny_gaussian, "name": "quiet"}, plugins)
    run({**tiny_gaussian, "name": "busy"}, plugins, "train.eval_every=5")
    a, b = weights(tmp_path / "runs" / "quiet"), weights(tmp_path / "runs" / "busy")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_seed_changes_weights_and_repeats_exactly(tiny_gaussian, plugins, tmp_path):
    run({**tiny_gaussian, "name": "a"}, plugins)
    run({**tiny_gaussian, "name": "b"}, plugins)
    run({**tiny_gaussian, "name": "c", "seed": 4}, plugins)
    a, b, c = (weights(tmp_path / "runs" / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_warmup_and_ema_weights_differ(tiny_gaussian, plugins, tmp_path):
    summary = run(tiny_gaussian, plugins, "train.warmup_steps=10", "train.ema_decay=0.9")
    assert summary["step"] == 20
    lrs = [r["lr"] for r in _records(tmp_path / "runs" / "tiny") if "lr" in r]
    assert lrs[0] == pytest.approx(1e-3 * 5 / 10) and lrs[-1] == pytest.approx(1e-3)
    w = weights(tmp_path / "runs" / "tiny")
    assert any(not torch.equal(w[k], w["ema/" + k[6:]]) for k in w if k.startswith("model/"))


def test_bf16_autocast_and_accumulation_train(tiny_gaussian, plugins):
    summary = run(tiny_gaussian, plugins, "train.precision=bf16", "train.grad_accum=2")
    assert summary["step"] == 20 and all(torch.isfinite(torch.tensor(v)) for k, v in summary.items()
                                         if k.endswith("mean_error"))


def test_batch_not_divisible_by_accumulation(tiny_gaussian, plugins, tmp_path):
    with pytest.raises(ConfigError, match=r"batch_size \(32\) must be divisible by grad_accum \(3\) @ config.train"):
        run(tiny_gaussian, plugins, "train.grad_accum=3")
    assert not (tmp_path / "runs").exists()


def _records(run_dir):
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
