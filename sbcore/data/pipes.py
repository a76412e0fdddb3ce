"""``pipe:`` shard URLs run a shell command (webdataset's ``gopen``), so they need an explicit opt-in.

A source allows them with ``allow_pipe: true``; ``SBCORE_ALLOW_PIPE=1`` allows them everywhere
(read strictly by `sbcore.env.flag`: ``false`` is no).
A run folder made by someone else may hold such a config, so `check_run_pipes` makes commands
that rebuild a run from its folder (``sbcore sample``, ``sbcore eval``: `sbcore.sample.load_trainer`)
say so before anything runs, unless the environment variable is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sbcore.env import flag
from sbcore.errors import DataError, RunFolderError

ENV = "SBCORE_ALLOW_PIPE"


def pipe_allowed() -> bool:
    return flag(ENV)


def is_pipe(url: str) -> bool:
    """A URL that runs a shell command (leading blanks ignored, as the reader would)."""
    return url.lstrip().startswith("pipe:")


def check_pipes(urls: list[str], allow: bool) -> None:
    """Refuse ``pipe:`` URLs unless the source or the environment allows them.

    `urls` are the expanded ones (after brace expansion), so ``{pipe:cmd,x.tar}`` is caught too."""
    pipes = [u for u in urls if is_pipe(u)]
    if pipes and not (allow or pipe_allowed()):
        raise DataError(f"urls: {pipes[0]!r} runs a shell command; if you trust it, set allow_pipe: true "
                        f"on this source (or {ENV}=1)")


def find_pipes(tree: Any, path: str = "config") -> list[tuple[str, str]]:
    """(key path, URL) of every ``pipe:`` string in a raw config."""
    if isinstance(tree, dict):
        return [hit for key, value in tree.items() for hit in find_pipes(value, f"{path}.{key}")]
    if isinstance(tree, list):
        return [hit for i, value in enumerate(tree) for hit in find_pipes(value, f"{path}[{i}]")]
    if not isinstance(tree, str) or "pipe:" not in tree:
        return []
    from webdataset.shardlists import expand_urls as expand_braces

    try:
        expanded = [u for part in tree.split("::") for u in expand_braces(part)]
    except Exception:  # noqa: BLE001 - not a URL pattern; judged by its text alone
        expanded = [tree]
    return [(path, tree)] if any(is_pipe(u) for u in [tree, *expanded]) else []


def check_run_pipes(run_dir: Path) -> None:
    """Stop before rebuilding a run whose config.yaml runs shell commands, unless ``SBCORE_ALLOW_PIPE=1``."""
    from sbcore.config_text import load_yaml

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
