"""Checkpoints without pickle: safetensors for tensors, JSON (in the file's metadata) for the rest.

A checkpoint at step N is two files in ``checkpoints/``:

* ``step_<N>.safetensors`` — network weights (``model/<net>.<param>``) and EMA weights
  (``ema/<net>.<param>``); metadata: the resolved config, the step, sbcore and plugin versions and
  each network's class name and constructor arguments, so ``sbcore sample`` can rebuild it alone;
* ``step_<N>.state.safetensors`` — optimizer, RNG and method state needed to resume exactly.

Each file is written to a temporary name and renamed, and the weights file is renamed last,
so a crash never leaves a checkpoint that looks complete but is not. Each file also carries a
CRC-32 of its tensor bytes (metadata key ``sbcore.crc32``), because safetensors has no checksum
and a flipped byte in tensor data would otherwise load silently. A damaged file raises
`CheckpointError` naming it and the newest checkpoint that still reads; `load_latest` (what
resume uses) falls back to that one.
"""

from __future__ import annotations

import errno
import json
import re
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from sbcore.config_text import shorten
from sbcore.errors import SbcoreError
from sbcore.io.files import atomic_write
from sbcore.network.base import build_network

_STEP = re.compile(r"^step_(\d+)\.safetensors$")
#: metadata key of the checksum over the tensor bytes (key order, raw bytes).
DIGEST_KEY = "sbcore.crc32"


class CheckpointError(SbcoreError, RuntimeError):
    """A checkpoint that cannot be read or written; the message names the file."""


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
    cpu = {k: t.cpu() for k, t in tensors.items()}
    metadata = {**metadata, DIGEST_KEY: json.dumps(_digest(cpu))}  # JSON like every other value

    def write(tmp: str) -> None:
        try:
            save_file(cpu, tmp, metadata=metadata)
        except OSError:
            raise
        except Exception as exc:  # safetensors reports a full disk or a failed write as its own error
            raise OSError(errno.EIO, f"cannot be written ({exc}); nothing was replaced", str(path)) from None

    atomic_write(path, write)


def save_checkpoint(
    folder: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    state: Any,
) -> Path:
    """Write the state file, then the weights file; returns the weights file's path.

    Weights that are not finite are refused, so every checkpoint on disk is finite and pruning by
    age always keeps the newest finite one."""
    path = folder / f"step_{step:08d}.safetensors"
    bad = [k for k, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"step {step}: weights {', '.join(bad[:3])} are not finite; {path} not written")
    tensors, tree = flatten(state)
    atomic_save(tensors, {"state": json.dumps(tree)}, state_path(path))
    try:
        atomic_save(weights, {k: json.dumps(v) for k, v in metadata.items()}, path)
    except BaseException:  # a state file without its weights is no checkpoint (a full disk, a kill)
        state_path(path).unlink(missing_ok=True)
        raise
    return path


def state_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name.replace(".safetensors", ".state.safetensors"))


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    crc = 0
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous()
        crc = zlib.crc32(key.encode(), crc)
        if t.numel():
            crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy(), crc)
    return f"{crc:08x}"


def _read(path: Path, hint: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and raw metadata of one file, checked against its checksum."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}{_last_good_hint(path) if hint else ''}") from None
    expected = raw.get(DIGEST_KEY)
    if expected is not None and _digest(tensors) != json.loads(expected):
        where = _last_good_hint(path) if hint else ""
        raise CheckpointError(f"checkpoint {path} is corrupted (checksum mismatch){where}")
    return tensors, raw


def _last_good_hint(path: Path) -> str:
    good = last_good(path.parent, before=path.with_name(path.name.replace(".state.safetensors", ".safetensors")))
    if good is None:
        return "; no earlier checkpoint reads"
    return f"; the last good checkpoint is {good} (resume=true falls back to it)"


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), "pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}{_last_good_hint(path)}") from None
    return {k: json.loads(v) for k, v in raw.items() if k != DIGEST_KEY}


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, raw = _read(path)
    try:
        return tensors, {k: json.loads(v) for k, v in raw.items() if k != DIGEST_KEY}
    except ValueError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: bad metadata: {exc}{_last_good_hint(path)}") from None


def load_state(weights_path: Path) -> Any:
    path = state_path(weights_path)
    tensors, raw = _read(path)
    try:
        tree = json.loads(raw["state"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot read checkpoint state {path}: {exc}{_last_good_hint(weights_path)}") from None
    return unflatten(tree, tensors)


def is_readable(weights_path: Path) -> bool:
    """Both files of the checkpoint load and match their checksums."""
    try:
        _read(weights_path, hint=False)
        _read(state_path(weights_path), hint=False)
    except CheckpointError:
        return False
    return True


def last_good(folder: Path, before: Path | None = None) -> Path | None:
    """The newest checkpoint (older than `before`, if given) whose files all read."""
    found = list_checkpoints(folder)
    if before is not None:
        found = [p for p in found if _step_of(p) < _step_of(before)]
    for path in reversed(found):
        if is_readable(path):
            return path
    return None


def load_latest(folder: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any], Any, list[str]] | None:
    """Load the newest readable checkpoint: (path, weights, metadata, state, problems skipped)."""
    problems: list[str] = []
    for path in reversed(list_checkpoints(folder)):
        try:
            tensors, meta = load_weights(path)
            state = load_state(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        return path, tensors, meta, state, problems
    if problems:
        raise CheckpointError("no readable checkpoint in " + str(folder) + ":\n  " + "\n  ".join(problems))
    return None


def _step_of(path: Path) -> int:
    m = _STEP.match(path.name)
    return int(m.group(1)) if m else -1


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


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """`module.load_state_dict(state)` (strict), or a `CheckpointError` naming `path` when the weights do
    not fit the rebuilt network (a config.yaml edited after training, another run's checkpoint)."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit the network rebuilt from the run's config "
                              f"({shorten(first)}); was config.yaml changed after training?") from None


def load_networks(path: Path, registry: Any, ema: bool = True) -> dict[str, Any]:
    """Rebuild every network of a checkpoint from its metadata alone (no config, no trainer).

    Parameters come from the EMA copy unless `ema=False`; buffers always from the model copy.
    """
    tensors, meta = load_weights(path)
    networks = {}
    for name, spec in meta["networks"].items():
        net = build_network(registry.get("network", spec["kind"]), spec["hparams"])
        cut = len(f"model/{name}.")
        state = {k[cut:]: t for k, t in tensors.items() if k.startswith(f"model/{name}.")}
        if ema:
            cut = len(f"ema/{name}.")
            state.update({k[cut:]: t for k, t in tensors.items() if k.startswith(f"ema/{name}.")})
        load_into(net, state, path)
        networks[name] = net.eval()
    return networks
