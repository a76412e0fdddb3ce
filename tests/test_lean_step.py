"""The lean training step keeps its promises: the step's random streams are exactly those of
`torch.manual_seed(micro_seeds(...))`, AdamW runs fused, and gradients are clipped per network only when
`train.grad_clip` is set (the returned norm is measured either way); a step reads nothing back to the
host, and a non-finite step is never applied."""

from __future__ import annotations

import pytest
import torch

from sbcore.config import structure_config
from sbcore.config_text import merge
from sbcore.errors import NonFiniteError
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


def test_step_reads_nothing_back_to_the_host(tiny_gaussian, plugins, tmp_path, monkeypatch):
    """Between sync points a step leaves its loss and gradient norm on the device: any read
    (item, tolist, float, bool) inside train_step fails this test."""
    trainer = trainer_for(tiny_gaussian, plugins, tmp_path)

    def read(*args, **kwargs):
        raise AssertionError("host read inside train_step")

    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
            patch.setattr(torch.Tensor, name, read)
        for _ in range(3):
            trainer.train_step()
    assert [step for step, _ in trainer._pending] == [1, 2, 3]
    stats = trainer._collect()
    assert len(trainer._window) == 3 and trainer._pending == [] and stats["grad_norm"] > 0


def test_nonfinite_step_is_not_applied(tiny_gaussian, plugins, tmp_path):
    """A NaN loss: the fused AdamW kernel leaves weights and step counts as they were (found_inf), and
    the sync point names the step; with train.nonfinite=skip it reports the skip and training goes on."""
    trainer = trainer_for(tiny_gaussian, plugins, tmp_path, nonfinite="skip")
    trainer.train_step()
    before = {k: p.detach().clone() for k, p in trainer.networks.named_parameters()}
    steps_before = [float(s["step"]) for s in trainer.optimizer.state.values()]
    original = trainer.training_loss
    trainer.training_loss = lambda n: original(n) * float("nan")
    trainer.train_step()
    assert all(torch.equal(p, before[k]) for k, p in trainer.networks.named_parameters())
    assert [float(s["step"]) for s in trainer.optimizer.state.values()] == steps_before
    trainer.training_loss = original
    trainer.train_step()
    assert not all(torch.equal(p, before[k]) for k, p in trainer.networks.named_parameters())
    assert trainer._collect()["skipped"] == 1.0 and len(trainer._window) == 2
    stop = trainer_for(tiny_gaussian, plugins, tmp_path / "stop")
    stop.train_step()
    stop.training_loss = lambda n: torch.tensor(float("inf"), requires_grad=True)
    stop.train_step()
    with pytest.raises(NonFiniteError, match=r"step 2: loss inf"):
        stop._collect()
