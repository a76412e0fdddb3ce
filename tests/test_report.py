"""`sbcore eval` and `sbcore report` on finished runs, the evaluation hook, and the page in a browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sbcore.cli import build_parser
from sbcore.config import structure_config
from sbcore.config_text import ConfigError, merge, parse_overrides
from sbcore.launch.local import run_local
from sbcore.metrics.plugin import sbcore_evaluate, sbcore_run_start
from sbcore.metrics.translation import Evaluation, Translation
from sbcore.report import latest_pictures, write_report
from sbcore.sampler.base import Trajectory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def finished_run(raw: dict, plugins, *overrides: str) -> Path:
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    run_local(config, None, plugins)
    return Path(config.out) / config.name


def cli(plugins, *argv: str) -> int:
    args = build_parser(plugins).parse_args(list(argv))
    return args.handler(args)


@pytest.fixture(scope="module")
def trained_gaussian_run(plugins, tmp_path_factory) -> Path:
    """One finished 2-D Gaussian bm run (20 steps, evaluated at steps 10 and 20) shared by the module."""
    raw = {
        "plugin": "bm", "name": "tiny", "out": str(tmp_path_factory.mktemp("runs")), "seed": 3,
        "data": {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}},
        "network": {"kind": "mlp", "hidden": 32, "layers": 2},
        "train": {"steps": 20, "batch_size": 32, "log_every": 5, "eval_samples": 200, "eval_every": 10,
                  "progress": False},
        "sampler": {"kind": "euler_maruyama", "steps": 10},
        "log": {"console": False},
    }
    return finished_run(raw, plugins)


@pytest.fixture
def gaussian_run(trained_gaussian_run, tmp_path) -> Path:
    """A private copy of the shared run, so each test writes its own eval.json and report."""
    return Path(shutil.copytree(trained_gaussian_run, tmp_path / "tiny"))


@pytest.fixture
def image_run(tiny_gaussian, plugins) -> Path:
    """A 4-step bm run translating MNIST digits to EMNIST letters with a small UNet."""
    raw = {**tiny_gaussian, "name": "digits"}
    raw["data"] = {"x0": {"source": "mnist", "size": 28, "limit": 64},
                   "x1": {"source": "emnist_letters", "size": 28, "limit": 64}}
    raw["network"] = {"kind": "unet", "channels": 16}
    raw["train"] = {**raw["train"], "steps": 4, "batch_size": 8, "eval_samples": 16, "checkpoint_every": 0}
    raw["sampler"] = {"kind": "euler_maruyama", "steps": 3}
    return finished_run(raw, plugins)


def test_eval_writes_reproducible_numbers_with_their_setting(gaussian_run, plugins, capsys):
    assert cli(plugins, "eval", f"run={gaussian_run}", "n=300", "metrics=w2,msd", "seed=5", "steps=4") == 0
    record = json.loads((gaussian_run / "eval.json").read_text())
    assert record["step"] == 20 and record["weights"] == "ema" and record["seed"] == 5
    assert record["n"] == {"forward": 300, "backward": 300} and record["split"] == "test"
    assert record["sampler"] == {"kind": "euler_maruyama", "steps": 4}
    assert record["nfe"] == {"forward": 4, "backward": 4}
    assert record["world_size"] == 1 and record["global_batch"] == 32
    assert set(record["metrics"]) == {"forward/w2", "forward/msd", "backward/w2", "backward/msd"}
    table = capsys.readouterr().out.splitlines()  # one row per metric, one column per direction
    assert table[2].split() == ["metric", "forward", "backward"] and table[3].split()[0] == "w2"
    first = record["metrics"]
    cli(plugins, "eval", f"run={gaussian_run}", "n=300", "metrics=w2,msd", "seed=5", "steps=4")
    assert json.loads((gaussian_run / "eval.json").read_text())["metrics"] == first


def test_eval_defaults_to_the_vector_metrics(gaussian_run, plugins):
    """Vector metrics, and on a Gaussian problem its closed-form plan scores with their floors."""
    cli(plugins, "eval", f"run={gaussian_run}", "n=200")
    names = {k.split("/")[1] for k in json.loads((gaussian_run / "eval.json").read_text())["metrics"]}
    plan = {"plan_bw2_uvp", "cbw2_uvp", "cov_rel_error"}
    assert names == {"w2", "sliced_w2", "mmd", "energy", "gaussian_w2"} | plan | {f"{n}_floor" for n in plan}


def test_evaluate_hook_computes_the_configured_metrics(plugins):
    import torch

    lines: list[str] = []
    run = SimpleNamespace(config=SimpleNamespace(seed=0, eval=SimpleNamespace(metrics=["msd", "ssim"]),
                                                 data=SimpleNamespace(x0=None, x1=None, pairs=None)),
                          registry=plugins.registry, echo=lines.append)
    x0 = torch.zeros(8, 2)
    forward = Translation("forward", x0, Trajectory(x0 + 1, None, 1), x0, None)
    values = sbcore_evaluate(run=run, evaluation=Evaluation(4, {}, {"forward": forward}))
    assert values == {"forward/msd": pytest.approx(1.0)}
    assert lines == ["metric forward/ssim skipped: needs images (B, C, H, W)"]
    run.config.eval.metrics = []
    assert sbcore_evaluate(run=run, evaluation=Evaluation(4, {}, {"forward": forward})) is None
    run.config.eval.metrics = ["msd", "w3"]  # checked when the run starts, not at its first evaluation
    with pytest.raises(ConfigError, match="unknown metric 'w3'"):
        sbcore_run_start(run=run)


def test_report_of_a_2d_run(gaussian_run, plugins):
    cli(plugins, "eval", f"run={gaussian_run}", "n=200", "metrics=w2")
    assert cli(plugins, "report", f"run={gaussian_run}") == 0
    out = gaussian_run / "report"
    page = (out / "index.html").read_text()
    assert '<table id="metrics">' in page and "forward/w2" in page and "global batch 32" in page
    assert "src=" in page and "http" not in page.split("<h2>Config</h2>")[0]  # nothing to fetch
    # only the latest evaluation step's pictures, each embedded once and copied beside the page
    chosen = {p.name for p in latest_pictures(gaussian_run / "pictures")}
    assert "forward_step000020.png" in chosen and "forward_step000010.png" not in chosen
    for name in chosen | {"train_curves.png", "eval_curves.png"}:
        assert (out / name).is_file(), name
    assert page.count("data:image/png;base64,") == len(chosen) + 2


def test_report_of_an_image_run(image_run, plugins):
    cli(plugins, "eval", f"run={image_run}", "n=16", "metrics=msd,sliced_w2")
    page = write_report(image_run).read_text()
    assert '<table id="metrics">' in page and "forward/msd" in page
    assert "data:image/gif;base64," in page and page.count("data:image/png;base64,") >= 3


def test_report_and_eval_refuse_a_folder_that_is_not_a_run(tmp_path, plugins):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        write_report(tmp_path)
    with pytest.raises(Exception, match="folder not found"):
        cli(plugins, "eval", f"run={tmp_path / 'missing'}")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(gaussian_run, plugins, tmp_path):
    cli(plugins, "eval", f"run={gaussian_run}", "n=200", "metrics=w2,mmd")
    page = write_report(gaussian_run)
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    shown = re.search(r'id="status">(\d+) of (\d+) images shown', dom)
    assert shown, dom[:500]
    assert shown[1] == shown[2] and int(shown[2]) >= 4  # every embedded image decoded
    table = re.search(r'<table id="metrics">(.*?)</table>', dom, re.S)
    assert table and "forward/w2" in table[1] and "backward/mmd" in table[1]
    shot = tmp_path / "report.png"
    subprocess.run([*common, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=60, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1200) and pixels.std() > 10  # a drawn page, not a blank one
