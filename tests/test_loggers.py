"""Logger plugins: neptune (offline, fallback without token or network) and TensorBoard record the
same metrics as metrics.jsonl; ``sbcore export`` and ``sbcore status``."""

from __future__ import annotations

import base64
import csv
import json
import time
import warnings

import pytest

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.launch.local import run_local
from sbcore.log.plugin import read_metrics

neptune_log = pytest.importorskip("sbcore.log.neptune")
pytest.importorskip("neptune", reason="the neptune extra is not installed: pip install -e .[neptune]")
pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed: pip install -e .[tensorboard]")

from sbcore.log.tensorboard import read_scalars  # noqa: E402


def _run(raw, plugins, *overrides):
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    return run_local(config, None, plugins)


@pytest.fixture
def small(tiny_gaussian):
    return merge(tiny_gaussian, {"train": {"eval_samples": 32, "checkpoint_every": 0},
                                 "sampler": {"kind": "euler_maruyama", "steps": 2}})


def _losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def test_neptune_offline_and_tensorboard_record_the_same_metrics(small, plugins, tmp_path):
    summary = _run(small, plugins, "log.neptune.enabled=true", "log.neptune.tags=[ci]", "log.tensorboard.enabled=true")
    run_dir = tmp_path / "runs" / "tiny"
    expected = _losses(run_dir)
    assert [s for s, _ in expected] == [5, 10, 15, 20]

    (folder,) = neptune_log.offline_runs(run_dir)
    meta, fields, series = neptune_log.read_offline_run(folder)
    assert meta["mode"] == "offline"
    assert series["metrics/loss"] == expected
    assert fields["config/train/steps"] == 20 and fields["config/plugin"] == "bm" and fields["sys/tags"] == {"ci"}
    assert fields["summary/forward/mean_error"] == pytest.approx(summary["forward/mean_error"])
    pictures = {k: v for k, v in fields.items() if k.startswith("pictures/")}
    assert "pictures/forward_step000020" in pictures and all(p.endswith(".png") for p in pictures.values())

    scalars = read_scalars(run_dir)
    assert [s for s, _ in scalars["loss"]] == [s for s, _ in expected]
    assert [v for _, v in scalars["loss"]] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert scalars["eval/forward/mean_error"][-1][1] == pytest.approx(summary["forward/mean_error"], rel=1e-6)
    assert scalars["summary/step"] == [(20, 20.0)]


def _token(address: str) -> str:
    return base64.b64encode(json.dumps({"api_address": address, "api_url": address, "api_key": "k"}).encode()).decode()


@pytest.mark.parametrize("token", ["bogus-token-0123456789", _token("http://127.0.0.1:9")],
                         ids=["bogus", "unreachable"])
def test_async_without_a_usable_server_falls_back_to_offline_quickly(small, plugins, tmp_path, monkeypatch, token):
    monkeypatch.setenv("NEPTUNE_API_TOKEN", token)
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(small, plugins, "train.steps=5", "log.neptune.enabled=true", "log.neptune.mode=async")
    elapsed = time.monotonic() - started
    ours = [w for w in caught if issubclass(w.category, neptune_log.NeptuneFallbackWarning)]
    assert len(ours) == 1 and "logging offline" in str(ours[0].message) and token not in str(ours[0].message)
    assert elapsed < 30, elapsed  # the client alone blocks ~60 s on an unreachable server
    run_dir = tmp_path / "runs" / "tiny"
    (folder,) = neptune_log.offline_runs(run_dir)
    assert neptune_log.read_offline_run(folder)[2]["metrics/loss"] == _losses(run_dir)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_choose_mode_without_token(monkeypatch):
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    assert neptune_log.choose_mode("async") == ("offline", "NEPTUNE_API_TOKEN is not set")
    assert neptune_log.choose_mode("debug") == ("debug", None)


def test_export_csv_and_status(small, plugins, tmp_path, capsys):
    _run(small, plugins)
    run_dir = tmp_path / "runs" / "tiny"
    assert main(["export", f"run={run_dir}"]) == 0
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [(int(r["step"]), float(r["loss"])) for r in rows] == _losses(run_dir)
    assert rows[-1]["eval/forward/nfe"] == "2" and rows[0]["eval/forward/nfe"] == ""
    capsys.readouterr()
    assert main(["status", f"run={run_dir}"]) == 0
    out = capsys.readouterr().out
    assert "finished at step 20" in out and "last training metrics (step 20): loss=" in out
    assert main(["export", "run=/nonexistent"]) == 2
