"""Bring-your-own data: arrays from ``.npz``, ``.pt`` or ``.safetensors`` files, no code needed.

Unpaired data is one file per side (``data.x0: {source: arrays, path: a.npz}``, ``data.x1`` likewise).
Paired data is one file holding row-aligned ``x0`` and ``x1`` arrays (``data.pairs: {source: arrays,
path: pairs.npz}``). ``.pt`` files are read with ``torch.load(weights_only=True)``, which unpickles
tensors and plain containers only, so a data file cannot run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sbcore.data.memory import MemorySource
from sbcore.io.torch_files import load_pt

SUFFIXES = (".npz", ".npy", ".pt", ".pth", ".safetensors")


def read_arrays(path: Path) -> dict[str, Tensor]:
    """Every named array in `path` as a CPU tensor (a bare array or tensor is named ``x``)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if suffix in (".pt", ".pth"):
        obj = load_pt(path)
        if isinstance(obj, Tensor):
            return {"x": obj}
        if isinstance(obj, dict) and all(isinstance(v, Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        raise ValueError(f"{path}: expected a tensor or a dict of tensors, got {type(obj).__name__}")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {k: torch.from_numpy(archive[k]) for k in archive.files}
        if suffix == ".npy":
            return {"x": torch.from_numpy(np.load(path, allow_pickle=False))}
        from safetensors.torch import load_file

        return load_file(str(path))
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as exc:  # a damaged or foreign file
        raise ValueError(f"{path}: cannot be read as {suffix}: {exc}") from exc
    except TypeError as exc:  # numpy arrays of strings or objects
        raise ValueError(f"{path}: holds an array that is not numbers ({exc}); expected numeric arrays") from None


class ArraysSource(MemorySource):
    """Samples are rows of an array in a user file; drawn uniformly with replacement.

    path: the file (``.npz``, ``.npy``, ``.pt``/``.pth``, ``.safetensors``).
    key: the array to use. Null: the file's only array, or its ``x0`` and ``x1`` arrays as pairs.
    labels: optional name of an (N,) integer label array in the same file.
    expect_shape: the per-sample shape the data must have (checked; null accepts any).
    value_range: the [low, high] the values must lie in (checked; null states the observed range).
    side: which side this file holds (x0, x1, or null); for information and for `key` defaults.
    test_path: the file of the held-out items, read the same way when ``split: test``.
    split: train (null) reads `path`, test reads `test_path`.
    """

    def __init__(
        self,
        path: str = "",
        key: str | None = None,
        labels: str | None = None,
        expect_shape: tuple[int, ...] | None = None,
        value_range: tuple[float, float] | None = None,
        side: str | None = None,
        test_path: str | None = None,
        split: str | None = None,
    ) -> None:
        if not path:
            raise ValueError("path: give the data file (.npz, .npy, .pt, .safetensors)")
        if split not in (None, "train", "test"):
            raise ValueError(f"split: expected train or test, got {split!r}")
        if split == "test" and not test_path:
            raise ValueError(f"split: {path} has no test split (give test_path: FILE)")
        file = Path(test_path if split == "test" else path).expanduser()
        arrays = read_arrays(file)
        if not arrays:
            raise ValueError(f"{file}: holds no arrays (empty file)")
        names = sorted(arrays)
        pair = None
        if key is None and side in arrays and len(arrays) > 1:
            key = side
        if key is None:
            data_names = [n for n in names if n != labels]
            if {"x0", "x1"} <= set(data_names):
                key, pair = "x0", self._float(arrays["x1"], file, "x1")
            elif len(data_names) == 1:
                key = data_names[0]
            else:
                raise ValueError(f"{file}: holds the arrays {names}; choose one with key: NAME "
                                 "(or name them x0 and x1 for paired data)")
        if key not in arrays:
            raise ValueError(f"{file}: has no array {key!r}; it holds {names}")
        if labels is not None and labels not in arrays:
            raise ValueError(f"{file}: has no label array {labels!r}; it holds {names}")
        data = self._float(arrays[key], file, key)
        if expect_shape is not None and tuple(data.shape[1:]) != tuple(expect_shape):
            raise ValueError(f"{file}: array {key!r} has samples of shape {tuple(data.shape[1:])}, "
                             f"expected {tuple(expect_shape)} (array shape {tuple(data.shape)})")
        if side not in (None, "x0", "x1"):
            raise ValueError(f"side: expected x0, x1 or null, got {side!r}")
        self.path, self.key, self.side = file, key, side
        label_array = None if labels is None else arrays[labels]
        super().__init__(data, name=str(file) + ("" if pair is not None else f"[{key}]"), labels=label_array,
                         pair=pair, value_range=value_range)

    @staticmethod
    def _float(a: Tensor, file: Path, key: str) -> Tensor:
        if a.dtype == torch.bool or a.is_complex():
            raise ValueError(f"{file}: array {key!r} has dtype {a.dtype}; expected real numbers")
        return a if a.dtype == torch.float32 else a.float()
