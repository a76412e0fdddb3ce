"""The Weights & Biases logger: offline with no key, read back by wandb's own reader."""

from __future__ import annotations

import math
import warnings

import wandb  # noqa: F401 - the extra is part of the test install: a missing one fails here, never skips

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.launch.local import run_local
from sbcore.log import wandb as wandb_log
from sbcore.log.plugin import read_metrics


def test_offline_run_records_the_config_the_metrics_and_the_summary(tiny_gaussian, plugins, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    raw = merge(tiny_gaussian, parse_overrides(["log.wandb.enabled=true", "log.wandb.mode=online",
                                                "log.wandb.tags=[ci]", "log.strict=true", "train.eval_samples=32"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_local(structure_config(raw, plugins.registry), None, plugins)
    assert any(issubclass(w.category, wandb_log.WandbFallbackWarning) and "WANDB_API_KEY" in str(w.message)
               for w in caught)
    run_dir = tmp_path / "runs" / "tiny"
    (folder,) = wandb_log.offline_runs(run_dir)
    records = wandb_log.read_offline_run(folder)
    (start,) = [r["run"] for r in records if r.get("type") == "run"]
    config = start["config"]["update"]
    assert start["display_name"] == "tiny" and start["tags"] == ["ci"] and config["plugin"] == "bm"
    assert config["network"] == {"kind": "mlp", "hidden": 32, "layers": 2} and config["log"]["wandb"]["enabled"]
    history = [(int(r["history"]["step"]["num"]), r["history"]["item"]) for r in records if r.get("type") == "history"]
    losses = [(step, item["loss"]) for step, item in history if "loss" in item]
    ours = [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]
    assert [s for s, _ in losses] == [s for s, _ in ours] == [5, 10, 15, 20]
    assert all(math.isclose(a, b, rel_tol=1e-6) for (_, a), (_, b) in zip(losses, ours, strict=True))
    final = {}
    for r in records:
        if r.get("type") == "summary":
            final.update(r["summary"].get("update", {}))
    assert final["summary/step"] == 20 and math.isclose(final["summary/eval_seconds"], summary["eval_seconds"])


def test_online_needs_a_key():
    assert wandb_log.choose_mode("offline") == ("offline", None)
    assert wandb_log.choose_mode("disabled") == ("disabled", None)
