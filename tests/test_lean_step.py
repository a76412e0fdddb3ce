"""The lean training step keeps its promises: the step's random streams are exactly those of
`torch.manual_seed(micro_seeds(...))`, AdamW runs fused, and gradients are clipped per network only when
`train.grad_clip` is set (the returned norm is measured either way)."""

from __future__ import annotations

import pytest
import torch

from sbcore.config import merge, structure_config
from sbcore.launch.distributed import micro_seeds
from sbcore.run import Run


def trainer_for(raw, plugins, tmp_path, **train):
    config = structure_config(merge(raw, {"train": train}), plugins.registry)
    run = Run(config=config, dir=tmp_path / "run", plugins=plugins, device=torch.device("cpu"))
    trainer = plugins.registry.get("method", config.plugin)(run)
    trainer.prepare()
    trainer._build_optimizer()
    return trainer


def test_reseed_gives_the_streams_of_manual_seed(tiny_gaussian, plugins, tmp_path):
    trainer = trainer_for(tiny_gaussian, plugins, tmp_path)
    trainer.step = 17
    trainer._reseed(1)
    drawn = torch.rand(5), torch.rand(5, generator=trainer.data_generator)
    torch_seed, data_seed = micro_seeds(tiny_gaussian["seed"], 17, 1)
    torch.manual_seed(torch_seed)
    assert torch.equal(drawn[0], torch.rand(5))
    assert torch.equal(drawn[1], torch.rand(5, generator=torch.Generator().manual_seed(data_seed)))


def test_optimizer_is_fused(tiny_gaussian, plugins, tmp_path):
    assert trainer_for(tiny_gaussian, plugins, tmp_path).optimizer.defaults["fused"] is True


@pytest.mark.parametrize("clip", [None, 0.5])
def test_gradients_clipped_per_network_only_when_asked(tiny_gaussian, plugins, tmp_path, clip):
    trainer = trainer_for(tiny_gaussian, plugins, tmp_path, grad_clip=clip)
    for scale, net in zip((3.0, 1e-4), trainer.networks.values(), strict=True):  # one above the clip, one below
        for p in net.parameters():
            p.grad = torch.full_like(p, scale)
    before = {name: torch.cat([p.grad.flatten() for p in net.parameters()]) for name, net in trainer.networks.items()}
    norm = trainer.clip_gradients()
    norms = {name: g.norm() for name, g in before.items()}
    assert norm == pytest.approx(float(torch.stack(list(norms.values())).norm()), rel=1e-5)
    for name, net in trainer.networks.items():
        after = torch.cat([p.grad.flatten() for p in net.parameters()])
        expected = norms[name] if clip is None else min(norms[name], clip)
        assert after.norm() == pytest.approx(float(expected), rel=1e-4)
        if clip is None or norms[name] <= clip:
            assert torch.equal(after, before[name])
