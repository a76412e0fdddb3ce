"""`train.lr_schedule`: the logged learning rate is the closed form at every step, over the run or per stage,
and a run resumed mid-schedule is bit-identical to one never stopped."""

from __future__ import annotations

import json
import math

import pytest

from sbcore.config import structure_config
from sbcore.config_text import ConfigError, merge, parse_overrides
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.testing.resume import assert_resume_is_exact
from sbcore.train.alternating import AlternatingBridgeMatching

LR, MIN_LR = 1.0e-2, 1.0e-3


def expected(schedule: str, s: int, length: int, warmup: int = 0, gamma: float = 0.5, step_size: int = 3) -> float:
    """The schedules written out independently of `sbcore.train.lr_schedule` (s: step within its span)."""
    if s < warmup:
        return LR * (s + 1) / warmup
    p = (s - warmup) / (length - warmup)
    return {
        "constant": LR,
        "cosine": MIN_LR + (LR - MIN_LR) * (1 + math.cos(math.pi * p)) / 2,
        "linear": MIN_LR + (LR - MIN_LR) * (1 - p),
        "step": LR * gamma ** ((s - warmup) // step_size),
    }[schedule]


def logged_lrs(run_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    return {r["step"]: r["lr"] for r in rows if "lr" in r}


def schedule_overrides(schedule: str, warmup: int) -> list[str]:
    return [f"train.lr_schedule={schedule}", f"train.warmup_steps={warmup}", f"train.lr={LR}",
            f"train.min_lr={MIN_LR}", "train.lr_gamma=0.5", "train.lr_step_size=3", "train.log_every=1"]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear", "step"])
@pytest.mark.parametrize("warmup", [0, 4])
def test_logged_lr_follows_the_closed_form_at_every_step(tiny_gaussian, plugins, tmp_path, schedule, warmup):
    raw = merge(tiny_gaussian, parse_overrides(schedule_overrides(schedule, warmup)))
    run_local(structure_config(raw, plugins.registry), None, plugins)
    lrs = logged_lrs(tmp_path / "runs" / "tiny")
    steps = raw["train"]["steps"]
    assert sorted(lrs) == list(range(1, steps + 1))
    for logged_step, lr in lrs.items():  # the row of step n logs the rate step n - 1 was taken with
        assert lr == pytest.approx(expected(schedule, logged_step - 1, steps, warmup), rel=1e-12), logged_step
    if schedule in ("cosine", "linear"):
        assert lrs[steps] < lrs[warmup + 1] and lrs[steps] > MIN_LR


def test_resume_mid_schedule_is_exact(tiny_gaussian, plugins):
    raw = merge(tiny_gaussian, parse_overrides([*schedule_overrides("cosine", 3), "train.checkpoint_every=7",
                                                "train.keep_checkpoints=5"]))
    assert_resume_is_exact(raw, plugins, resume_step=7)


@pytest.mark.parametrize("bad, message", [
    (["train.lr_schedule=exponential"], "lr_schedule"),
    (["train.min_lr=0.1", "train.lr=0.01"], "min_lr"),
    (["train.lr_gamma=1.5"], "lr_gamma"),
    (["train.lr_step_size=0"], "lr_step_size"),
    (["train.lr_span=epoch"], "lr_span"),
])
def test_bad_schedule_keys_are_config_errors(tiny_gaussian, plugins, bad, message):
    with pytest.raises(ConfigError, match=message):
        structure_config(merge(tiny_gaussian, parse_overrides(bad)), plugins.registry)


# ---- alternating methods: one schedule per stage ---------------------------------------------------


@pytest.fixture(scope="module")
def alternating_plugins():
    plugins = create_plugins()
    plugins.registry.add("method", "alternating_lr", AlternatingBridgeMatching)
    return plugins


def alternating_config(tmp_path, *overrides):
    raw = {
        "plugin": "alternating_lr", "name": "alt", "out": str(tmp_path / "runs"), "seed": 1,
        "data": {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}},
        "method": {"first_inner_iters": 4, "inner_iters": 5, "outer_iters": 3, "cache_size": 8, "refresh_every": 2,
                   "cache_steps": 3},
        "network": {"kind": "mlp", "hidden": 8, "layers": 1, "time_dim": 4},
        "train": {"batch_size": 4, "ema_decay": 0.5, "eval_samples": 16, "progress": False, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 3},
        "log": {"console": False},
    }
    return merge(raw, parse_overrides(list(overrides)))


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_stage_span_restarts_the_schedule_with_every_stage(tmp_path, alternating_plugins, schedule):
    raw = alternating_config(tmp_path, *schedule_overrides(schedule, 2), "train.lr_span=stage")
    run_local(structure_config(raw, alternating_plugins.registry), None, alternating_plugins)
    lrs = logged_lrs(tmp_path / "runs" / "alt")
    stages = [(0, 4), (4, 5), (9, 5)]  # (start, length): the first stage is first_inner_iters long
    assert sorted(lrs) == list(range(1, 15))
    for logged_step, lr in lrs.items():
        start, length = next((a, n) for a, n in stages if a <= logged_step - 1 < a + n)
        assert lr == pytest.approx(expected(schedule, logged_step - 1 - start, length, 2), rel=1e-12), logged_step


def test_run_span_ignores_the_stages(tmp_path, alternating_plugins):
    raw = alternating_config(tmp_path, *schedule_overrides("linear", 2))
    run_local(structure_config(raw, alternating_plugins.registry), None, alternating_plugins)
    for logged_step, lr in logged_lrs(tmp_path / "runs" / "alt").items():
        assert lr == pytest.approx(expected("linear", logged_step - 1, 14, 2), rel=1e-12)


def test_resume_mid_stage_schedule_is_exact(tmp_path, alternating_plugins):
    raw = alternating_config(tmp_path, *schedule_overrides("cosine", 2), "train.lr_span=stage",
                             "train.checkpoint_every=6", "train.keep_checkpoints=5")
    assert_resume_is_exact(raw, alternating_plugins, resume_step=6)
