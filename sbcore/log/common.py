"""What the logger plugins share: which values are scalars, which pictures are new."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

PICTURE_SUFFIXES = (".png",)


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers among `metrics` (booleans and strings are not series)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} -> {"train/lr": 1e-3}; lists and None become strings."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten_config(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    if tree is None or isinstance(tree, (list, tuple)):
        return {prefix: str(tree)}
    return {prefix: tree}


class PictureWatch:
    """Finds pictures written to ``run_dir/pictures`` since the last call."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = Path(run_dir) / "pictures"
        self.seen: set[Path] = set()

    def new(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = sorted(p for p in self.folder.iterdir() if p.suffix in PICTURE_SUFFIXES and p not in self.seen)
        self.seen.update(found)
        return found
