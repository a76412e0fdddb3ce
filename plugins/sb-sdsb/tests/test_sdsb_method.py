"""The sdsb method: epoch alternation, the chain-step cache (layout and refresh), the frozen teacher, config
errors and exact resume mid-epoch with a cache."""

from __future__ import annotations

import pytest
import torch
from sb_sdsb.method import SDSB

from sbcore.config import structure_config
from sbcore.config_text import ConfigError
from sbcore.plugins import create_plugins
from sbcore.run import Run
from sbcore.testing.resume import assert_resume_is_exact

torch.set_num_threads(1)
N = 4


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def raw_config(tmp_path, method=None, **train):
    return {
        "plugin": "sdsb", "name": "t", "out": str(tmp_path / "runs"), "seed": 3,
        "data": {"x0": {"source": "toy2d", "name": "pinwheel"}, "x1": {"source": "toy2d", "name": "checkerboard:8"}},
        "method": {"gamma": "linear_1e-3_1e-2", "training_timesteps": N, "inference_timesteps": N, "epochs": 3,
                   "steps_per_epoch": 4, "cache_size": 64, "refresh_every": 2, "cache_chunk": 32, **(method or {})},
        "network": {"kind": "resmlp", "hidden": 16, "blocks": 1, "steps": N},
        "train": {"batch_size": 8, "lr": 1e-2, "ema_decay": 0.0, "grad_clip": None, "log_every": 100,
                  "eval_samples": 32, "progress": False, **train},
        "log": {"console": False, "jsonl": False},
    }


def make_trainer(tmp_path, plugins, method=None, **train) -> SDSB:
    """A trainer ready to step, as `Trainer.fit` prepares it."""
    config = structure_config(raw_config(tmp_path, method, **train), plugins.registry)
    trainer = SDSB(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer._seed()
    trainer.setup()
    trainer._build_optimizer()
    return trainer


def params(trainer: SDSB, name: str) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.networks[name].parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# ---- config --------------------------------------------------------------------------------------


def test_config_resolves_steps_sampler_and_schedule(tmp_path, plugins):
    config = structure_config(raw_config(tmp_path), plugins.registry)
    assert config.train.steps == 3 * 4
    assert config.sampler.kind == "sdsb_chain" and config.sampler.params["steps"] == N
    schedule = config.method.schedule
    assert [schedule.stage_at(k).direction for k in range(12)] == ["forward"] * 4 + ["backward"] * 4 + ["forward"] * 4
    skipped = structure_config(raw_config(tmp_path, {"skip_first_epoch": True}), plugins.registry)
    assert skipped.train.steps == 2 * 4  # epoch 0 is done: x1_to_x0 trains first
    assert [skipped.method.schedule.stage_at(k).direction for k in (0, 4)] == ["backward", "forward"]


def test_prior_x1_mirrors_the_schedule(tmp_path, plugins):
    """prior: x1 trains x1_to_x0 first (and skips to x0_to_x1 after a pretrained start)."""
    config = structure_config(raw_config(tmp_path, {"prior": "x1"}), plugins.registry)
    assert [config.method.schedule.stage_at(k).direction for k in (0, 4, 8)] == ["backward", "forward", "backward"]
    skipped = structure_config(raw_config(tmp_path, {"prior": "x1", "skip_first_epoch": True}), plugins.registry)
    assert [skipped.method.schedule.stage_at(k).direction for k in (0, 4)] == ["forward", "backward"]


def test_prior_x1_is_the_mirror_of_swapped_sides(tmp_path, plugins):
    """Epoch 0 with the sides swapped and prior: x1 draws the very reference chains of prior: x0."""
    plain = make_trainer(tmp_path / "a", plugins)
    raw = raw_config(tmp_path / "b", {"prior": "x1"})
    raw["data"] = {"x0": raw["data"]["x1"], "x1": raw["data"]["x0"]}
    config = structure_config(raw, plugins.registry)
    mirrored = SDSB(Run(config=config, dir=tmp_path / "b", plugins=plugins, device=torch.device("cpu")))
    mirrored._seed()
    mirrored.setup()

    def rows(trainer: SDSB) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)  # the chains' noise
        return trainer.reference_rows(32)

    a, b = rows(plain), rows(mirrored)
    assert all(torch.equal(a[k], b[k]) for k in ("x", "target", "label"))
    # the chains start at the data side (checkerboard, |x| up to ~4) and end at the prior (pinwheel)
    ends = a["target"].view(8, N, 2)[:, 0]
    assert ends.norm(dim=1).max() < 2.0


@pytest.mark.parametrize("method, message", [
    ({"prior": "x1", "network_output": "velocity"}, "set prior: x0"),
    ({"prior": "x2"}, "prior"),
    ({"gamma": "linear_1e-2_1e-3"}, r"method.gamma: MIN must be <= MAX .*'linear_1e-2_1e-3'"),
    ({"gamma": "linear", "training_timesteps": 5, "inference_timesteps": 5}, "even number of steps"),
    ({"simplify": False, "reparam": "term"}, "set simplify: true"),
    ({"inference_timesteps": 2}, "inference_timesteps must equal training_timesteps"),
    ({"cache_size": 30}, "cache_size counts chain steps"),
    ({"noiser": "ou"}, "noiser"),
])
def test_config_errors_name_the_problem(tmp_path, plugins, method, message):
    with pytest.raises(ConfigError, match=message):
        structure_config(raw_config(tmp_path, method), plugins.registry)


def test_network_steps_must_match_the_chain(tmp_path, plugins):
    raw = raw_config(tmp_path)
    raw["network"]["steps"] = 8
    config = structure_config(raw, plugins.registry)
    trainer = SDSB(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    with pytest.raises(ValueError, match=r"network.steps \(8\) must equal method.training_timesteps \(4\)"):
        trainer.setup()


# ---- epochs, teacher and cache -------------------------------------------------------------------


def test_epochs_alternate_and_train_one_network_each(tmp_path, plugins):
    trainer = make_trainer(tmp_path, plugins, {"reparam": "flow"})
    assert set(trainer.networks) == {"x0_to_x1", "x1_to_x0"}
    for epoch, (trained, frozen) in enumerate([("x0_to_x1", "x1_to_x0"), ("x1_to_x0", "x0_to_x1"),
                                               ("x0_to_x1", "x1_to_x0")]):
        before_trained, before_frozen = params(trainer, trained), params(trainer, frozen)
        for _ in range(4):
            trainer.train_step()
        assert not same(params(trainer, trained), before_trained) and same(params(trainer, frozen), before_frozen)
        if epoch == 0:
            assert trainer.teacher is None and trainer.cache is None  # the reference chain needs no cache
        else:  # the teacher is the other network as it ended its epoch
            assert same([p for p in trainer.teacher.parameters()], params(trainer, frozen))


def test_cache_rows_are_whole_chains_and_refresh_every_k_steps(tmp_path, plugins):
    trainer = make_trainer(tmp_path, plugins, {"simplify": True})
    for _ in range(5):  # epoch 0, then the first step of epoch 1 builds the cache
        trainer.train_step()
    rows = trainer.cache.rows
    assert rows["x"].shape == (64, 2) and rows["target"].shape == (64, 2)
    assert rows["label"].tolist() == [3, 2, 1, 0] * 16  # chain by chain, s = N - 1 - j
    # simplified target = the previous state: within a chain, row j + 1's target is row j's input
    chains_x, chains_y = rows["x"].view(16, N, 2), rows["target"].view(16, N, 2)
    assert torch.equal(chains_y[:, 1:], chains_x[:, :-1])
    # the chains start at x0 data (x0_to_x1 is the teacher of epoch 1): the first target is a pinwheel point
    assert chains_y[:, 0].norm(dim=1).max() < 2.0
    first = rows["x"]
    trainer.train_step()  # step 5: the second draw from the same rows
    assert trainer.cache.rows["x"] is first
    trainer.train_step()  # step 6: refresh_every = 2 draws served, so new chains
    assert not torch.equal(trainer.cache.rows["x"], first)


# ---- resume --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [{"simplify": False, "noiser": "dsb"}, {"reparam": "term"}])
def test_resume_mid_epoch_with_a_cache_is_exact(tmp_path, plugins, method):
    """A run resumed at step 5 (epoch 1, cache built at 4, refresh due at 6) ends bit-identical."""
    raw = raw_config(tmp_path, method, checkpoint_every=5, keep_checkpoints=5)
    assert_resume_is_exact(raw, plugins, resume_step=5)
