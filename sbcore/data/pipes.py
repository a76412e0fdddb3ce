"""``pipe:`` shard URLs run a shell command (webdataset's ``gopen``), so they need an explicit opt-in.

A source allows them with ``allow_pipe: true``; ``SBCORE_ALLOW_PIPE=1`` allows them everywhere.
A run folder made by someone else may hold such a config, so `check_run_pipes` makes commands
that rebuild a run from its folder (``sbcore sample``, ``sbcore eval``: `sbcore.sample.load_trainer`)
say so before anything runs, unless the environment variable is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sbcore.errors import DataError, RunFolderError

ENV = "SBCORE_ALLOW_PIPE"


def pipe_allowed() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def check_pipes(urls: list[str], allow: bool) -> None:
    """Refuse ``pipe:`` URLs unless the source or the environment allows them."""
    pipes = [u for u in urls if u.startswith("pipe:")]
    if pipes and not (allow or pipe_allowed()):
        raise DataError(f"urls: {pipes[0]!r} runs a shell command; if you trust it, set allow_pipe: true "
                        f"on this source (or {ENV}=1)")


def find_pipes(tree: Any, path: str = "config") -> list[tuple[str, str]]:
    """(key path, URL) of every ``pipe:`` string in a raw config."""
    if isinstance(tree, dict):
        return [hit for key, value in tree.items() for hit in find_pipes(value, f"{path}.{key}")]
    if isinstance(tree, list):
        return [hit for i, value in enumerate(tree) for hit in find_pipes(value, f"{path}[{i}]")]
    return [(path, tree)] if isinstance(tree, str) and tree.startswith("pipe:") else []


def check_run_pipes(run_dir: Path) -> None:
    """Stop before rebuilding a run whose config.yaml runs shell commands, unless ``SBCORE_ALLOW_PIPE=1``."""
    from sbcore.config import load_yaml

    path = Path(run_dir) / "config.yaml"
    if pipe_allowed() or not path.is_file():
        return
    try:
        hits = find_pipes(load_yaml(path.read_text(encoding="utf-8")))
    except Exception:  # noqa: BLE001 - an unreadable config is reported by whoever reads it next
        return
    if hits:
        where, url = hits[0]
        raise RunFolderError(f"{path} runs shell commands through pipe: URLs ({where}: {url!r}); read them, "
                             f"and if you trust them set {ENV}=1 to let sbcore run them")
