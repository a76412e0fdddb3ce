"""Shared fixtures: the real plugin set, tiny configs, and small-thread torch for speed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sbcore.plugins import create_plugins

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors run fastest on one thread; runs may set their own (`train.threads`), so restore it."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def plugins():
    return create_plugins()


@pytest.fixture
def tiny_gaussian(tmp_path):
    """A raw config for a 2-D Gaussian `bm` run that trains in about a second."""
    return {
        "plugin": "bm",
        "name": "tiny",
        "out": str(tmp_path / "runs"),
        "seed": 3,
        "data": {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}},
        "process": {"kind": "brownian", "sigma": 1.0},
        "network": {"kind": "mlp", "hidden": 32, "layers": 2},
        "train": {"steps": 20, "batch_size": 32, "lr": 1.0e-3, "log_every": 5, "eval_samples": 200,
                  "progress": False, "checkpoint_every": 10},
        "sampler": {"kind": "euler_maruyama", "steps": 10},
        "log": {"console": False},
    }


if "SBCORE_DATA_DIR" not in os.environ and DATA_DIR.is_dir():
    os.environ["SBCORE_DATA_DIR"] = str(DATA_DIR)


#: markers whose tests must run, not skip (``.ci/run`` sets ``SBCORE_REQUIRE=slurm,browser``).
REQUIRED = {m.strip() for m in os.environ.get("SBCORE_REQUIRE", "").split(",") if m.strip()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn the skip of a required feature (no SLURM, no Chromium) into a failure in CI."""
    outcome = yield
    report = outcome.get_result()
    required = REQUIRED & {m.name for m in item.iter_markers()}
    if report.skipped and required:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"required feature {sorted(required)} was skipped: {reason}"
