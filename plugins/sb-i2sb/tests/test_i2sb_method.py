"""The `i2sb` method: masked loss, cond_x1, known pixels, paired data, the regression baseline, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sb_i2sb.method import I2SB, NET
from torch import nn

from sbcore.config import structure_config
from sbcore.config_text import ConfigError
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.run import Run


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def smooth_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, size // 4, size // 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=size, mode="bilinear").numpy()


def raw_config(tmp_path, method=None, process=None, data=None, **train):
    if data is None:
        np.savez(tmp_path / "clean.npz", x=smooth_images(64))
        data = {"x0": {"source": "arrays", "path": str(tmp_path / "clean.npz")}}
    return {
        "plugin": "i2sb", "name": "t", "out": str(tmp_path / "runs"), "seed": 1, "data": data,
        "method": {"corruption": "sr4x-pool"} if method is None else method,
        "process": process or {"kind": "i2sb", "beta_max": 0.3, "interval": 100},
        "network": {"kind": "unet", "channels": 4, "channel_mults": [1, 2], "groups": 2},
        "sampler": {"kind": "i2sb", "steps": 3},
        "train": {"steps": 2, "batch_size": 4, "eval_samples": 8, "progress": False, "threads": 1, **train},
    }


def make_trainer(tmp_path, plugins, **kw) -> I2SB:
    config = structure_config(raw_config(tmp_path, **kw), plugins.registry)
    trainer = I2SB(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer.setup()
    return trainer


class Oracle(nn.Module):
    """Outputs the exact eps label for a known x0 on the hole, garbage elsewhere; records its inputs."""

    def __init__(self, process, x0, mask=None):
        super().__init__()
        self.process, self.x0, self.mask, self.calls = process, x0, mask, []

    def forward(self, x, t, cond=None):
        self.calls.append((x.clone(), t.clone(), cond))
        label = (x - self.x0) / self.process.std_fwd(t)[:, None, None, None]
        return label if self.mask is None else label * self.mask + 100 * (1 - self.mask)


def test_masked_loss_ignores_known_pixels(tmp_path, plugins):
    trainer = make_trainer(tmp_path, plugins, method={"corruption": "inpaint-center"})
    x0 = torch.as_tensor(smooth_images(4))
    corrupted = trainer.corruption(x0)
    trainer.draw_batch = lambda n: (x0, corrupted.x1, corrupted.mask)
    trainer.networks[NET] = Oracle(trainer.process, x0, corrupted.mask)
    assert float(trainer.training_loss(4)) == 0.0
    start = trainer.networks[NET].calls[0][0]
    hole = corrupted.mask.bool().expand_as(start)
    assert not bool((start[hole] == 1).all())  # the network never sees the white hole


def test_oracle_restores_through_trainer_sample_with_cond(tmp_path, plugins):
    """Trainer.sample(direction, x_start, steps, cond=...): the chain lands on x0 up to the s0 mixing."""
    trainer = make_trainer(tmp_path, plugins, method={"corruption": "sr4x-pool", "cond_x1": True},
                           process={"kind": "i2sb", "beta_max": 0.3, "interval": 100, "ot_ode": True})
    x0 = torch.as_tensor(smooth_images(4))
    x1 = trainer.corruption(x0).x1
    oracle = trainer.networks[NET] = Oracle(trainer.process, x0)
    seen = []
    out = trainer.sample("backward", x1, steps=5, record=True, callback=lambda k, x, t, e: seen.append(k))
    mix = float(trainer.process.tables["std_fwd"][0] ** 2 / trainer.process.tables["std_fwd"][-1] ** 2)
    assert out.nfe == 5 and seen == [0, 1, 2, 3, 4] and out.predictions.shape == (5, 4, 1, 16, 16)
    assert torch.allclose(out.x, x0 - mix * (x0 - x1), atol=1e-5)
    assert all(torch.equal(cond, x1) for _, _, cond in oracle.calls)  # cond_x1: the network sees x1
    custom = torch.zeros_like(x1)
    trainer.sample("backward", x1, steps=1, cond=custom)
    assert torch.equal(oracle.calls[-1][2], custom)
    assert trainer.networks[NET] is oracle


def test_ot_ode_inpainting_reproduces_known_pixels_exactly(tmp_path, plugins):
    trainer = make_trainer(tmp_path, plugins, method={"corruption": "inpaint-center"},
                           process={"kind": "i2sb", "beta_max": 1.0, "interval": 100, "ot_ode": True})
    x0 = torch.as_tensor(smooth_images(4))
    degraded = trainer.corruption(x0)
    for steps in (1, 4):
        out = trainer.sample("backward", degraded.x1, steps=steps)
        known = ~degraded.mask.bool().expand_as(x0)
        assert float((out.x - x0)[known].abs().max()) == 0.0
        assert not torch.isclose(out.x[~known], torch.ones(1)).all()


def test_paired_npz_trains_and_aligns(tmp_path, plugins):
    x0 = smooth_images(32, seed=3)
    np.savez(tmp_path / "pairs.npz", x0=x0, x1=-x0)
    trainer = make_trainer(tmp_path, plugins, method={"cond_x1": True},
                           data={"pairs": {"source": "arrays", "path": str(tmp_path / "pairs.npz")}})
    assert trainer.corruption is None and trainer.paired
    a = trainer.draw("x0", 8, torch.Generator().manual_seed(5))
    b = trainer.draw("x1", 8, torch.Generator().manual_seed(5))
    assert torch.equal(b, -a)
    loss = trainer.training_loss(4)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert trainer.sample("backward", b, steps=2).x.shape == b.shape


def test_corruption_pairs_align_between_draws(tmp_path, plugins):
    trainer = make_trainer(tmp_path, plugins, method={"corruption": "inpaint-freeform1020"})
    a = trainer.draw("x0", 6, torch.Generator().manual_seed(2))
    b = trainer.draw("x1", 6, torch.Generator().manual_seed(2))
    mask = (b >= 1) & (a < 1)
    assert torch.equal(b[~mask], a[~mask]) and 0.05 < float(mask.float().mean()) < 0.25


def test_regression_baseline_is_one_evaluation(tmp_path, plugins):
    trainer = make_trainer(tmp_path, plugins, method={"corruption": "sr4x-pool", "objective": "regression"})
    x0 = torch.as_tensor(smooth_images(4))
    x1 = trainer.corruption(x0).x1
    trainer.draw_batch = lambda n: (x0, x1, None)
    # the untrained UNet outputs 0 (zero-initialised last conv), so the loss is E[x0^2]
    assert float(trainer.training_loss(4).detach()) == pytest.approx(float(x0.pow(2).mean()), rel=1e-6)
    out = trainer.sample("backward", x1, steps=50, return_path=True)
    assert out.nfe == 1 and out.path.shape == (2, 4, 1, 16, 16)


@pytest.mark.parametrize("fraction, ends", [(0.0, 0), (0.5, 4), (1.0, 8)])
def test_end_fraction_draws_that_share_of_the_batch_at_the_last_step(tmp_path, plugins, fraction, ends):
    """The NFE-1 restoration reads only k = N - 1: end_fraction puts that share of each batch there, at bridge
    states within the last step's small noise of x1, the rest uniform over k."""
    trainer = make_trainer(tmp_path, plugins, method={"corruption": "sr4x-pool", "end_fraction": fraction})
    x0 = torch.as_tensor(smooth_images(8))
    x1 = trainer.corruption(x0).x1
    trainer.draw_batch = lambda n: (x0, x1, None)
    trainer.networks[NET] = oracle = Oracle(trainer.process, x0)
    torch.manual_seed(0)
    assert float(trainer.training_loss(8)) < 1e-10
    x, t, _ = oracle.calls[0]
    at_end = t == 1.0
    assert int(at_end.sum()) == ends and bool(at_end[:ends].all())
    std = float(trainer.process.std_sb(torch.tensor(1.0)))
    assert 0 < std < 0.02 and bool(((x - x1).abs().flatten(1).amax(1)[at_end] < 6 * std).all())
    with pytest.raises(ConfigError, match="end_fraction"):
        make_trainer(tmp_path, plugins, method={"corruption": "sr4x-pool", "end_fraction": 1.5})


def test_a_short_run_evaluates_against_the_clean_partners(tmp_path, plugins):
    run_local(structure_config(raw_config(tmp_path), plugins.registry), None, plugins)
    rows = [json.loads(line) for line in (tmp_path / "runs" / "t" / "metrics.jsonl").read_text().splitlines()]
    evaluated = {k for row in rows for k in row}
    assert {"eval/backward/psnr", "eval/backward/ssim", "eval/backward/nfe"} <= evaluated


@pytest.mark.parametrize(("changes", "message"), [
    ({"process": {"kind": "brownian", "sigma": 1.0}}, "process: i2sb trains on the I2SB bridge"),
    ({"method": {}}, "i2sb needs data.pairs"),
    ({"method": {"corruption": "sr4x-pool", "cond_x1": True}, "network_cond": 1}, "set by method.cond_x1"),
])
def test_setup_errors_are_one_line(tmp_path, plugins, changes, message):
    raw = raw_config(tmp_path, method=changes.get("method"), process=changes.get("process"))
    if "network_cond" in changes:
        raw["network"]["cond_channels"] = 1
    trainer = I2SB(Run(config=structure_config(raw, plugins.registry), dir=tmp_path, plugins=plugins,
                       device=torch.device("cpu")))
    with pytest.raises(ValueError, match=message):
        trainer.setup()


def test_config_errors(tmp_path, plugins):
    with pytest.raises(ConfigError, match="unknown corruption 'sr4x'"):
        structure_config(raw_config(tmp_path, method={"corruption": "sr4x"}), plugins.registry)
    with pytest.raises(ConfigError, match="quality"):
        structure_config(raw_config(tmp_path, method={"corruption": {"kind": "jpeg-10", "quality": 3}}),
                         plugins.registry)
    trainer = make_trainer(tmp_path, plugins)
    with pytest.raises(ValueError, match="sample direction 'backward'"):
        trainer.sample("forward", torch.zeros(1, 1, 16, 16))


def test_a_stochastically_trained_run_samples_deterministically_with_ot_ode(tmp_path, plugins):
    """`sbcore sample ... ot_ode=true` on a run trained with ot_ode false: two seeds give identical restorations
    (the stochastic chain, the run's own setting, gives different ones)."""
    from sbcore.sample import sample_command

    run_local(structure_config(raw_config(tmp_path), plugins.registry), None, plugins)
    run_dir = tmp_path / "runs" / "t"
    np.savez(tmp_path / "degraded.npz", x=smooth_images(4, seed=5))

    def restored(seed: int, *options: str) -> np.ndarray:
        out = tmp_path / f"out_{seed}_{'_'.join(options)}.npz"
        sample_command([f"run={run_dir}", f"input={tmp_path / 'degraded.npz'}", f"seed={seed}", f"out={out}",
                        "steps=4", *options])
        return np.load(out)["x0"]

    deterministic = restored(0, "ot_ode=true"), restored(1, "ot_ode=true")
    assert np.array_equal(*deterministic)
    stochastic = restored(0), restored(1)
    assert not np.allclose(*stochastic)
    assert np.array_equal(stochastic[0], restored(0, "ot_ode=false"))  # false: the run's own chain
    assert not np.allclose(deterministic[0], stochastic[0])
    trainer = make_trainer(tmp_path, plugins)
    trainer.sample("backward", torch.zeros(1, 1, 16, 16), steps=2, ot_ode=True)
    assert trainer.process.ot_ode is False  # the switch lasts one call


def test_the_sampler_option_switches_ot_ode_for_the_chain_and_the_projection(tmp_path, plugins):
    """`sampler.ot_ode=true` (e.g. `sbcore eval ... sampler.ot_ode=true`): deterministic, known pixels exact."""
    raw = raw_config(tmp_path, method={"corruption": "inpaint-center"})
    raw["sampler"]["ot_ode"] = True
    config = structure_config(raw, plugins.registry)
    trainer = I2SB(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer.setup()
    assert trainer.process.ot_ode is False
    x0 = torch.as_tensor(smooth_images(4))
    degraded = trainer.corruption(x0)
    trainer.networks[NET] = Oracle(trainer.process, x0)
    out = trainer.sample("backward", degraded.x1, steps=3).x
    known = 1 - degraded.mask
    assert torch.equal(out * known, x0 * known)  # re-imposed as x1 itself (OT-ODE), not x1 + std_sb noise
    assert not torch.equal(trainer.sample("backward", degraded.x1, steps=3, ot_ode=False).x * known, x0 * known)
