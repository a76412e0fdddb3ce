"""DSBM on the core's alternating training: loss weights, first couplings (IPF vs IMF), the cache refresh
order, the frozen teacher, resume."""

from __future__ import annotations

import pytest
import torch
from sb_dsbm.method import DSBM, ReferenceCoupling

from sbcore.config import structure_config
from sbcore.coupling.cache import SimulationCache
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.process.brownian import BrownianBridge
from sbcore.run import Run
from sbcore.testing.resume import assert_resume_is_exact
from sbcore.train.bridge_matching import NETWORK_NAME, bridge_matching_loss

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def raw_config(tmp_path, method=None, sigma=1.0, **train):
    return {
        "plugin": "dsbm", "name": "t", "out": str(tmp_path / "runs"), "seed": 5,
        "data": {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}},
        "method": {"inner_iters": 4, "outer_iters": 3, "cache_size": 16, "refresh_every": 2, **(method or {})},
        "process": {"kind": "brownian", "sigma": sigma},
        "network": {"kind": "mlp", "hidden": 16, "layers": 1, "time_dim": 4},
        "train": {"batch_size": 8, "lr": 1e-2, "ema_decay": 0.5, "log_every": 100, "eval_samples": 64,
                  "progress": False, **train},
        "sampler": {"kind": "euler_maruyama", "steps": 4},
        "log": {"console": False, "jsonl": False},
    }


def make_trainer(tmp_path, plugins, method=None, sigma=1.0, **train) -> DSBM:
    """A trainer ready to step, as `Trainer.fit` prepares it."""
    config = structure_config(raw_config(tmp_path, method, sigma, **train), plugins.registry)
    trainer = DSBM(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer._seed()
    trainer.setup()
    trainer._build_optimizer()
    return trainer


# ---- loss weights ---------------------------------------------------------------------------------


class Zero(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


@pytest.mark.parametrize("direction, t", [("forward", 0.99), ("backward", 0.01)])
def test_bridge_variance_weight_tames_the_target_noise(direction, t):
    """With x0 = x1 = 0 the target is pure bridge noise of variance sigma^2 t/(1-t) (forward) per dimension;
    the weight sigma^2 (1-t) turns it into sigma^4 t, i.e. O(1) instead of blowing up at t -> 1."""
    sigma, n, d = 1.5, 200_000, 3
    process, zeros = BrownianBridge(sigma), torch.zeros(n, d, dtype=torch.float64)
    tt = torch.full((n,), t, dtype=torch.float64)
    s = t if direction == "forward" else 1 - t
    torch.manual_seed(0)
    uniform = bridge_matching_loss(Zero(), process, zeros, zeros, tt, direction, "drift", "uniform", "sum")
    torch.manual_seed(0)
    weighted = bridge_matching_loss(Zero(), process, zeros, zeros, tt, direction, "drift", "bridge_variance", "sum")
    assert uniform.item() == pytest.approx(d * sigma**2 * s / (1 - s), rel=0.02)
    assert weighted.item() == pytest.approx(d * sigma**4 * s, rel=0.02)
    torch.manual_seed(0)
    mean = bridge_matching_loss(Zero(), process, zeros, zeros, tt, direction, "drift", "bridge_variance", "mean")
    assert mean.item() == pytest.approx(weighted.item() / d, rel=1e-6)


def test_weighted_and_uniform_losses_have_the_same_target():
    """The weight only rescales each sample's error: an exact drift has zero loss under both."""
    process = BrownianBridge(1.0)
    x0 = torch.randn(64, 2, dtype=torch.float64)
    x1 = x0 + 3.0
    t = torch.rand(64, dtype=torch.float64)

    class Exact(torch.nn.Module):  # the bridge drift towards x1 of the fixed pairing x1 = x0 + 3 ... known only on x_t
        def forward(self, x, tt):
            return self.target

    net = Exact()
    torch.manual_seed(1)
    x_t = process.sample_bridge(x0, x1, t)
    net.target = process.drift_target(x0, x1, x_t, t, "forward")
    for weighting in ("uniform", "bridge_variance"):
        torch.manual_seed(1)
        loss = bridge_matching_loss(net, process, x0, x1, t, "forward", "drift", weighting)
        assert loss.item() == pytest.approx(0.0, abs=1e-20)


# ---- first couplings ----------------------------------------------------------------------------


def _moments(x0, x1):
    c = ((x0 - x0.mean(0)) * (x1 - x1.mean(0))).mean(0)
    return x0.mean(0), x1.mean(0), x1.var(0), c


def test_reference_coupling_is_q01_from_either_side():
    torch.manual_seed(0)
    data = torch.randn(100_000, 2) * 2 + 1
    pair = ReferenceCoupling(BrownianBridge(0.5), anchor="x0")(x0=data)
    assert torch.equal(pair.x0, data)
    torch.testing.assert_close((pair.x1 - pair.x0).std(0), torch.full((2,), 0.5), atol=0.01, rtol=0)
    mirror = ReferenceCoupling(BrownianBridge(0.5), anchor="x1")(x1=data)
    assert torch.equal(mirror.x1, data)
    torch.testing.assert_close((mirror.x0 - mirror.x1).std(0), torch.full((2,), 0.5), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="needs the x1 batch"):
        ReferenceCoupling(BrownianBridge(1.0), anchor="x1")(x0=data)
    with pytest.raises(ValueError, match="sigma > 0"):
        ReferenceCoupling(BrownianBridge(0.0))


@pytest.mark.parametrize("variant", ["imf", "ipf", "bm", "sbcfm"])
def test_first_coupling_of_each_variant(tmp_path, plugins, variant):
    """IMF/bm: pi0 x pi1 (Cov 0); IPF: Q01 from pi0 (x1 = x0 + sigma xi, Cov = Var x0 = 1, mean -1);
    sbcfm: minibatch Sinkhorn at reg 2 sigma^2 (positive Cov, both marginals kept)."""
    trainer = make_trainer(tmp_path, plugins, {"variant": variant}, batch_size=512)
    stage = trainer.schedule.stage_at(0)
    trainer.enter_stage(stage)
    assert trainer.teacher is None and trainer.cache is None and stage.direction == "backward"
    x0, x1 = map(torch.cat, zip(*(trainer.stage_pairs(stage, 512) for _ in range(20)), strict=True))
    m0, m1, v1, c = _moments(x0, x1)
    torch.testing.assert_close(m0, torch.full((2,), -1.0), atol=0.05, rtol=0)
    if variant == "ipf":
        torch.testing.assert_close(m1, torch.full((2,), -1.0), atol=0.05, rtol=0)
        torch.testing.assert_close(v1, torch.full((2,), 2.0), atol=0.1, rtol=0)
        torch.testing.assert_close(c, torch.full((2,), 1.0), atol=0.05, rtol=0)
    else:
        torch.testing.assert_close(m1, torch.full((2,), 1.0), atol=0.05, rtol=0)
        torch.testing.assert_close(v1, torch.full((2,), 1.0), atol=0.1, rtol=0)
        if variant == "sbcfm":
            assert (c > 0.3).all()
        else:
            torch.testing.assert_close(c, torch.zeros(2), atol=0.05, rtol=0)


# ---- cache refresh order ----------------------------------------------------------------------------


def fit(tmp_path, plugins, monkeypatch, method, after_step=None, sigma=1.0, **train) -> dict:
    """Train a tiny run; `after_step(trainer)` sees the trainer after every optimisation step."""
    holder = {}
    original = DSBM.train_step

    def train_step(self):
        holder["trainer"] = self
        out = original(self)
        if after_step is not None:
            after_step(self)
        return out

    monkeypatch.setattr(DSBM, "train_step", train_step)
    run_local(structure_config(raw_config(tmp_path, method, sigma, **train), plugins.registry), None, plugins)
    return holder


def test_cache_is_made_by_the_previous_stage_ema_network(tmp_path, plugins, monkeypatch):
    """Stage n's pairs come from stage n-1's direction, simulated with its EMA weights frozen at the stage
    boundary, rebuilt on the first batch and then every `refresh_every` steps."""
    events = []
    original = SimulationCache.refresh

    def spy(self):
        trainer = holder["trainer"]
        direction = trainer.teacher_direction(trainer.stage)
        name = NETWORK_NAME[direction]
        shadow = {k[len(name) + 1:]: v for k, v in trainer.ema.shadow.items() if k.startswith(name + ".")}
        raw = trainer.networks[name].state_dict()
        teacher = trainer.teacher.state_dict()
        events.append((trainer.step, trainer.stage.index, direction,
                       all(torch.equal(teacher[k], shadow[k]) for k in teacher),
                       any(not torch.equal(teacher[k], raw[k]) for k in teacher)))
        original(self)

    monkeypatch.setattr(SimulationCache, "refresh", spy)
    holder = {}
    fit(tmp_path, plugins, monkeypatch, {"variant": "imf"},
        after_step=lambda trainer: holder.setdefault("trainer", trainer))
    # stages: 0 b [0,4) independent, 1 f [4,8) from b, 2 b [8,12) from f; refresh at stage start, then every 2
    assert [e[:3] for e in events] == [(4, 1, "backward"), (6, 1, "backward"), (8, 2, "forward"), (10, 2, "forward")]
    assert all(e[3] for e in events), "the teacher must hold the EMA weights"
    assert all(e[4] for e in events), "the teacher must not be the raw (non-EMA) weights"


def test_single_direction_teacher_is_a_frozen_copy(tmp_path, plugins, monkeypatch):
    """With fb_sequence [backward] (rf, IMF-b) the teacher does not follow the network being trained, and
    the cache pairs the backward network's data start x1 with its generated x0."""
    seen = {}

    def after_step(trainer):
        if trainer.step == 5:
            seen["teacher"] = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
        if trainer.step == 7:
            seen["later"] = trainer.teacher.state_dict()
            seen["live"] = trainer.networks[NETWORK_NAME["backward"]].state_dict()
            seen["cache"] = trainer.cache.rows
            seen["direction"] = trainer.teacher_direction(trainer.stage)

    fit(tmp_path, plugins, monkeypatch, {"variant": "rf", "fb_sequence": ["backward"]}, after_step, sigma=0.0)
    assert seen["direction"] == "backward"
    assert all(torch.equal(seen["teacher"][k], v) for k, v in seen["later"].items())
    assert any(not torch.equal(seen["teacher"][k], seen["live"][k]) for k in seen["live"])
    torch.testing.assert_close(seen["cache"]["x1"].mean(0), torch.ones(2), atol=0.6, rtol=0)  # data side N(1, I)


def test_staged_ema_freezes_the_idle_network(tmp_path, plugins, monkeypatch):
    shadows = {}

    def after_step(trainer):
        if trainer.step in (4, 7):
            shadows[trainer.step] = {k: v.clone() for k, v in trainer.ema.shadow.items()}

    fit(tmp_path, plugins, monkeypatch, {"variant": "imf"}, after_step)
    a, b = shadows[4], shadows[7]  # steps 4..7 train the forward network
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("backward_drift."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("forward_drift."))


# ---- resume ---------------------------------------------------------------------------------------


def test_resume_mid_stage_with_a_cache_is_exact(tmp_path, plugins):
    """A run resumed at step 5 (stage 1, cache built at 4, refresh due at 6) ends bit-identical."""
    raw = raw_config(tmp_path, {"variant": "imf", "reset_optimizer": True}, checkpoint_every=5, keep_checkpoints=5)
    assert_resume_is_exact(raw, plugins, resume_step=5)
