"""Checkpoints without pickle: safetensors for tensors, JSON (in the file's metadata) for the rest.

A checkpoint at step N is two files in ``checkpoints/``:

* ``step_<N>.safetensors`` — network weights (``model/<net>.<param>``) and EMA weights
  (``ema/<net>.<param>``); metadata: the resolved config, the step, sbcore and plugin versions and
  each network's class name and constructor arguments, so ``sbcore sample`` can rebuild it alone;
* ``step_<N>.state.safetensors`` — optimizer, RNG and method state needed to resume exactly.

Each file is written to a temporary name and renamed, and the weights file is renamed last,
so a crash never leaves a checkpoint that looks complete but is not.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

_STEP = re.compile(r"^step_(\d+)\.safetensors$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


def flatten(tree: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested structure into (tensors by key, a JSON tree with tensor placeholders).

    Dicts with non-string keys (optimizer state uses ints) are kept as lists of pairs.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().contiguous()
            return {"__tensor__": path}
        if isinstance(node, dict):
            if all(isinstance(k, str) for k in node):
                return {k: walk(val, f"{path}.{k}" if path else k) for k, val in node.items()}
            return {"__items__": [[k, walk(val, f"{path}.{k}")] for k, val in node.items()]}
        if isinstance(node, (list, tuple)):
            return [walk(val, f"{path}.{i}") for i, val in enumerate(node)]
        return node

    return tensors, walk(tree, prefix)


def unflatten(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__items__"}:
            return {k: unflatten(val, tensors) for k, val in tree["__items__"]}
        return {k: unflatten(val, tensors) for k, val in tree.items()}
    if isinstance(tree, list):
        return [unflatten(val, tensors) for val in tree]
    return tree


def atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    """Write a safetensors file to a temp name in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: t.cpu() for k, t in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    folder: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    state: Any,
) -> Path:
    """Write the state file, then the weights file; returns the weights file's path."""
    path = folder / f"step_{step:08d}.safetensors"
    tensors, tree = flatten(state)
    atomic_save(tensors, {"state": json.dumps(tree)}, state_path(path))
    atomic_save(weights, {k: json.dumps(v) for k, v in metadata.items()}, path)
    return path


def state_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name.replace(".safetensors", ".state.safetensors"))


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), "pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    return {k: json.loads(v) for k, v in raw.items()}


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    return tensors, read_metadata(path)


def load_state(weights_path: Path) -> Any:
    path = state_path(weights_path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            tree = json.loads((f.metadata() or {})["state"])
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot read checkpoint state {path}: {exc}") from None
    return unflatten(tree, tensors)


def list_checkpoints(folder: Path) -> list[Path]:
    """Weights files in step order (oldest first)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP.match(p.name))]
    return [p for _, p in sorted(found)]


def prune(folder: Path, keep: int) -> None:
    for path in list_checkpoints(folder)[:-keep]:
        state_path(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
