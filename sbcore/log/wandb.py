"""Weights & Biases logger plugin (``log.wandb.enabled=true``; needs the ``wandb`` extra).

Offline first, like the neptune logger: the default mode ``offline`` needs no account or key and
writes wandb's own run files under ``<run>/wandb/offline-run-*`` (upload them later with
``wandb sync runs/NAME/wandb/offline-run-*``). ``online`` is used only when ``WANDB_API_KEY`` is set;
otherwise the run logs offline with one warning, so a missing key never blocks training. Logged: the
config, every metric at its step, evaluation pictures and the summary. A resumed run continues the same
wandb run (its id is kept in ``<run>/wandb/run_id``).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sbcore.errors import require
from sbcore.hookspecs import hookimpl
from sbcore.log.common import PictureWatch, scalars

_open: dict[Path, tuple[Any, PictureWatch]] = {}


class WandbFallbackWarning(UserWarning):
    """wandb could not run online and logs offline instead."""


def choose_mode(requested: str) -> tuple[str, str | None]:
    """The mode to use and, when it differs from `requested`, why."""
    if requested == "online" and not os.environ.get("WANDB_API_KEY"):
        return "offline", "WANDB_API_KEY is not set"
    return requested, None


def open_run(folder: Path, name: str, cfg: Any, config: dict[str, Any]) -> Any:
    """Start (or continue) the wandb run of a run folder; the global random states are left untouched."""
    wandb = require("wandb", "wandb", "log.wandb.enabled")
    mode, reason = choose_mode(cfg.mode)
    if reason:
        warnings.warn(f"wandb: {reason}; logging offline to {folder}", WandbFallbackWarning, stacklevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / "run_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    id_file.write_text(run_id + "\n")
    settings = wandb.Settings(silent=True, console="off", disable_git=True, save_code=False, x_disable_stats=True)
    states = random.getstate(), np.random.get_state()
    try:
        return wandb.init(mode=mode, dir=str(folder.parent), project=cfg.project, entity=cfg.entity,
                          group=cfg.group, name=name, tags=list(cfg.tags), id=run_id, resume="allow",
                          config=config, settings=settings, reinit="create_new")
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


def _log_pictures(wrun: Any, watch: PictureWatch, step: int) -> None:
    import wandb

    pictures = {f"pictures/{path.stem}": wandb.Image(str(path)) for path in watch.new()}
    if pictures:
        wrun.log(pictures, step=step)


@hookimpl
def sbcore_run_start(run: Any) -> None:
    cfg = run.config.log.wandb
    if not (cfg.enabled and run.is_main) or run.dir in _open:
        return
    wrun = open_run(run.dir / "wandb", run.dir.name, cfg, run.config_dict())
    _open[run.dir] = (wrun, PictureWatch(run.dir))


@hookimpl
def sbcore_step_end(run: Any, step: int, metrics: dict[str, Any]) -> None:
    if run.dir not in _open:
        return
    wrun, watch = _open[run.dir]
    values = scalars(metrics)
    if values:
        wrun.log(values, step=step)
    if any(k.startswith("eval/") for k in metrics):
        _log_pictures(wrun, watch, step)


@hookimpl
def sbcore_run_end(run: Any, summary: dict[str, Any]) -> None:
    if run.dir not in _open:
        return
    wrun, watch = _open.pop(run.dir)
    _log_pictures(wrun, watch, int(summary.get("step", 0)))
    wrun.summary.update({f"summary/{key}": value for key, value in scalars(summary).items()})
    wrun.finish()


def offline_runs(run_dir: Path) -> list[Path]:
    """wandb's offline run folders of a run (one per start)."""
    return sorted(Path(run_dir, "wandb").glob("offline-run-*"))


def read_offline_run(folder: Path) -> list[dict[str, Any]]:
    """The records of an offline run's ``.wandb`` file, read by wandb itself (``wandb leet inspect --json``)."""
    (log,) = Path(folder).glob("*.wandb")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                         capture_output=True, text=True, check=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
