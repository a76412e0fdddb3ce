"""Alternating training: the stage schedule, the simulation cache, and a method that caches whole paths."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from sbcore.config import structure_config
from sbcore.coupling.cache import SimulationCache
from sbcore.plugins import create_plugins
from sbcore.run import Run
from sbcore.testing.resume import assert_resume_is_exact
from sbcore.train.alternating import AlternatingBridgeMatching, Schedule

# ---- the schedule -----------------------------------------------------------------------------------


def test_stages_follow_the_step():
    s = Schedule(("backward", "forward"), inner_iters=3, outer_iters=5, first_inner_iters=5, first_stages=2)
    # stages: 0 b [0,5) first, 1 f [5,10) first, 2 b [10,13), 3 f [13,16), 4 b [16,19)
    assert s.total_steps == 19
    expected = [(0, "backward", True)] * 5 + [(1, "forward", True)] * 5 + [(2, "backward", False)] * 3 \
        + [(3, "forward", False)] * 3 + [(4, "backward", False)] * 3
    got = [(st.index, st.direction, st.first) for st in map(s.stage_at, range(19))]
    assert got == expected
    assert (s.stage_at(13).start, s.stage_at(13).stop) == (13, 16)
    assert s.stage_at(19).index == 4 and s.stage_at(10**6).index == 4  # past the end: the last stage


def test_open_ended_schedule_and_single_direction():
    s = Schedule(("backward",), inner_iters=4)
    assert s.total_steps is None
    assert [s.stage_at(k).index for k in (0, 3, 4, 39, 40)] == [0, 0, 1, 9, 10]
    assert {s.stage_at(k).direction for k in range(40)} == {"backward"}


@pytest.mark.parametrize("kwargs, message", [
    ({"fb_sequence": ()}, "fb_sequence"),
    ({"fb_sequence": ("b",)}, "fb_sequence"),
    ({"inner_iters": 0}, "inner_iters"),
    ({"outer_iters": 0}, "outer_iters"),
    ({"first_stages": 0}, "first_stages"),
])
def test_schedule_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**{"fb_sequence": ("backward", "forward"), "inner_iters": 2, **kwargs})


# ---- the simulation cache ------------------------------------------------------------------------------


class Paths:
    """simulate(n): rows numbered by a running id, each with a 3-point path and its times."""

    def __init__(self, start: int = 0) -> None:
        self.next_id, self.sizes = start, []

    def __call__(self, n: int) -> dict[str, torch.Tensor]:
        self.sizes.append(n)
        ids = torch.arange(self.next_id, self.next_id + n, dtype=torch.float64)
        self.next_id += n
        path = ids[:, None, None] + torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)[None, :, None]
        return {"x0": ids[:, None], "path": path, "t": torch.linspace(0, 1, 3, dtype=torch.float64).expand(n, 3)}


def test_cache_keeps_rows_of_every_entry_together_and_refreshes_every_k_draws():
    sim = Paths()
    cache = SimulationCache(sim, size=10, refresh_every=3, chunk_size=4, generator=torch.Generator().manual_seed(0))
    for call in range(7):
        rows = cache.draw(6)
        refreshes = call // 3 + 1
        assert sim.sizes == [4, 4, 2] * refreshes
        ids = rows["x0"][:, 0]
        assert ((ids >= 10 * (refreshes - 1)) & (ids < 10 * refreshes)).all() and ids.unique().numel() == 6
        assert torch.equal(rows["path"][:, 0, 0], ids) and torch.equal(rows["path"][:, 2, 0], ids + 1)
        assert rows["t"].shape == (6, 3)
    with pytest.raises(ValueError, match="batch size 11 exceeds cache_size 10"):
        cache.draw(11)


def test_cache_state_resumes_bit_identically(tmp_path):
    cache = SimulationCache(Paths(), size=8, refresh_every=4, chunk_size=3, generator=torch.Generator().manual_seed(1))
    for _ in range(6):
        cache.draw(5)
    save_file(cache.state_dict(), tmp_path / "cache.safetensors")
    sim = cache.simulate
    expected = [cache.draw(5) for _ in range(7)]
    resumed = SimulationCache(Paths(start=16), size=8, refresh_every=4, chunk_size=3,
                              generator=torch.Generator().manual_seed(99))
    resumed.load_state_dict(load_file(tmp_path / "cache.safetensors"))
    for want in expected:
        got = resumed.draw(5)
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert resumed.simulate.sizes == sim.sizes[2 * 3:]  # the same refreshes, from the same point
    with pytest.raises(ValueError, match="this cache's size is 9"):
        SimulationCache(Paths(), size=9, refresh_every=1).load_state_dict(cache.state_dict())


# ---- a method that caches whole paths ------------------------------------------------------------------


class PathMethod(AlternatingBridgeMatching):
    """Alternating bridge matching whose stages also see the teacher's whole paths."""

    cache_paths = True


@pytest.fixture(scope="module")
def plugins():
    plugins = create_plugins()
    plugins.registry.add("method", "alternating_paths", PathMethod)
    return plugins


def raw_config(tmp_path, **train):
    return {
        "plugin": "alternating_paths", "name": "t", "out": str(tmp_path / "runs"), "seed": 3,
        "data": {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}},
        "method": {"inner_iters": 3, "outer_iters": 3, "cache_size": 12, "refresh_every": 2, "cache_steps": 5},
        "process": {"kind": "brownian", "sigma": 0.5},
        "network": {"kind": "mlp", "hidden": 8, "layers": 1, "time_dim": 4},
        "train": {"batch_size": 4, "lr": 1e-2, "ema_decay": 0.5, "log_every": 100, "eval_samples": 16,
                  "progress": False, "threads": 1, **train},
        "sampler": {"kind": "euler_maruyama", "steps": 3},
        "log": {"console": False, "jsonl": False},
    }


def test_path_cache_holds_the_teachers_paths_on_the_cache_grid(tmp_path, plugins):
    config = structure_config(raw_config(tmp_path), plugins.registry)
    assert config.train.steps == 9
    trainer = PathMethod(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer._seed()
    trainer.setup()
    trainer._build_optimizer()
    trainer.step = 3  # stage 1: forward, taught by stage 0's backward network
    trainer.training_loss(4)
    assert trainer.stage.index == 1 and trainer.ema.active == "forward_drift" and trainer.teacher is not None
    rows = trainer.cache.rows
    assert rows["path"].shape == (12, 6, 2) and rows["t"].shape == (12, 6)
    torch.testing.assert_close(rows["t"][0], torch.linspace(1, 0, 6))  # backward teacher: t from 1 to 0
    assert torch.equal(rows["path"][:, 0], rows["x1"]) and torch.equal(rows["path"][:, -1], rows["x0"])
    assert not any(p.requires_grad for p in trainer.teacher.parameters())


def test_resume_mid_stage_with_a_path_cache_is_exact(tmp_path, plugins):
    raw = raw_config(tmp_path, checkpoint_every=4, keep_checkpoints=5)
    assert_resume_is_exact(raw, plugins, resume_step=4)


# ---- train.steps: one meaning in every method ------------------------------------------------------------


def test_train_steps_is_the_total_in_alternating_methods(tmp_path, plugins):
    """train.steps open: the stages fill it; equal to the stages: accepted; outer_iters null: train.steps ends them."""
    assert structure_config(raw_config(tmp_path), plugins.registry).train.steps == 9
    assert structure_config(raw_config(tmp_path, steps=9), plugins.registry).train.steps == 9
    raw = raw_config(tmp_path, steps=5)
    raw["method"]["outer_iters"] = None
    config = structure_config(raw, plugins.registry)
    assert config.train.steps == 5 and config.method.schedule.stage_at(4).index == 1


def test_train_steps_that_disagree_with_the_stages_are_refused_in_one_line(tmp_path, plugins):
    from sbcore.config_text import ConfigError

    with pytest.raises(ConfigError) as info:
        structure_config(raw_config(tmp_path, steps=50), plugins.registry)
    assert len(info.value.lines) == 1
    line = info.value.lines[0]
    assert "train.steps=50" in line and "make 9;" in line
    assert "method.outer_iters=null" in line and "method.inner_iters" in line and line.endswith("@ config.train.steps")


def test_train_steps_left_open_defaults_for_single_stage_methods(tmp_path):
    raw = raw_config(tmp_path)
    raw.update(plugin="bm", method={})
    raw["train"].pop("steps", None)
    assert structure_config(raw, create_plugins().registry).train.steps == 1000
