"""A tiny run config for tests of the run machinery (CLI faults, resume, plugin hooks) rather than of a method:
a `bm` run from a 2-D Gaussian to moons that trains in well under a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sbcore.config_text import merge

_TINY: dict[str, Any] = {
    "plugin": "bm", "name": "tiny", "seed": 0,
    "data": {"x0": {"source": "gaussian", "dim": 2}, "x1": {"source": "toy2d", "name": "moons"}},
    "network": {"kind": "mlp", "hidden": 16, "layers": 2},
    "train": {"steps": 4, "batch_size": 16, "log_every": 2, "eval_samples": 16, "progress": False, "threads": 1},
    "sampler": {"kind": "euler_maruyama", "steps": 2},
    "log": {"console": False},
}


def tiny_run_config(**sections: Any) -> dict[str, Any]:
    """The tiny run's raw config with `sections` merged in, e.g. ``train={"steps": 6, "checkpoint_every": 2}``
    (a mapping that names a kind or source replaces its node, as in YAML overrides)."""
    return merge(_TINY, sections)


def write_tiny_config(folder: Path, **sections: Any) -> Path:
    """`folder`/tiny.yaml holding the tiny run (with `sections`), whose runs go to `folder`/runs unless
    `sections` name another ``out``."""
    path = Path(folder) / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_run_config(**{"out": str(Path(folder) / "runs"), **sections})))
    return path
