"""MNIST, Fashion-MNIST and EMNIST letters, read offline from ``.npz`` files in ``$SBCORE_DATA_DIR``.

The files (``mnist.npz``, ``fashion_mnist.npz``, ``emnist_letters.npz``) hold ``x_train``, ``y_train``,
``x_test``, ``y_test``: uint8 images (N, 28, 28), row 0 at the top, 0 = background, and uint8 labels.
``emnist_letters_test10k.npz`` (test split only, labels 1-13) is accepted as an offline stand-in
for EMNIST letters. When a file is missing, ``download: true`` fetches the dataset once through
torchvision's dataset classes and converts it; otherwise the error says where the file is expected
and how to get it. Images are zero-padded to 32 x 32 by default (the size the bridge papers' UNets
take) and mapped from 0..255 to `value_range` (default [-1, 1]).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from sbcore.data.memory import MemorySource, affine_to_range

DEFAULT_DATA_DIR = "~/.cache/sbcore/data"

#: dataset name -> (files tried in order, torchvision class name, extra torchvision arguments).
_FILES: dict[str, tuple[tuple[str, ...], str, dict[str, str]]] = {
    "mnist": (("mnist.npz",), "MNIST", {}),
    "fashion_mnist": (("fashion_mnist.npz",), "FashionMNIST", {}),
    "emnist_letters": (("emnist_letters.npz", "emnist_letters_test10k.npz"), "EMNIST", {"split": "letters"}),
}

_CACHE: dict[tuple[str, int, str], np.ndarray] = {}


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing; the message says where it is expected and how to get it."""

    def __str__(self) -> str:
        return str(self.args[0])


def data_dir() -> Path:
    """``$SBCORE_DATA_DIR``, else ``~/.cache/sbcore/data``."""
    return Path(os.environ.get("SBCORE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()


def _missing_message(name: str, folder: Path) -> str:
    files, tv_class, _ = _FILES[name]
    expected = folder / files[0]
    also = f" (or the offline subset {folder / files[1]})" if len(files) > 1 else ""
    return (
        f"{name}: data file {expected} not found{also}; SBCORE_DATA_DIR="
        f"{os.environ.get('SBCORE_DATA_DIR', f'(unset, default {DEFAULT_DATA_DIR})')}.\n"
        f"Get it in one of these ways:\n"
        f"  - set `download: true` on this source (needs internet): it fetches torchvision.datasets.{tv_class} "
        f"once and writes {expected};\n"
        f"  - copy a {files[0]} holding uint8 arrays x_train (N, 28, 28), y_train (N,), x_test, y_test into "
        f"{folder};\n"
        f"  - or point SBCORE_DATA_DIR at the folder that already holds it."
    )


def dataset_file(name: str, download: bool = False) -> Path:
    """The ``.npz`` file of `name`, downloading it first when missing and `download` is set."""
    folder = data_dir()
    for file in _FILES[name][0]:
        if (folder / file).is_file():
            return folder / file
    if not download:
        raise DataNotFoundError(_missing_message(name, folder))
    return download_npz(name, folder)


def download_npz(name: str, folder: Path) -> Path:
    """Fetch `name` through torchvision (train and test) and save it as ``folder/<name>.npz``.

    EMNIST's files store every image transposed; they are transposed back here, once, so all three
    datasets share the upright MNIST orientation.
    """
    import torchvision.datasets as tvd

    files, tv_class, extra = _FILES[name]
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(dir=folder) as raw_dir:
        for split, train in (("train", True), ("test", False)):
            ds = getattr(tvd, tv_class)(raw_dir, train=train, download=True, **extra)
            images = ds.data.numpy().astype(np.uint8)
            if name == "emnist_letters":
                images = images.transpose(0, 2, 1)
            arrays[f"x_{split}"] = np.ascontiguousarray(images)
            arrays[f"y_{split}"] = ds.targets.numpy().astype(np.uint8)
    target = folder / files[0]
    tmp = target.with_name(target.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(target)
    return target


def load_array(path: Path, key: str) -> np.ndarray:
    """`key` of an ``.npz`` file, cached per process (decompressing MNIST takes a noticeable moment)."""
    cache_key = (str(path), path.stat().st_mtime_ns, key)
    if cache_key not in _CACHE:
        with np.load(path) as archive:
            if key not in archive.files:
                raise KeyError(key)
            _CACHE[cache_key] = archive[key]
    return _CACHE[cache_key]


def parse_letters(classes: str | list[int]) -> list[int]:
    """"A-E" / "ACE" / "A-C,K" / [1, 2, 3] -> EMNIST letter labels (A=1 ... Z=26; case is merged)."""
    if isinstance(classes, list):
        labels = [int(c) for c in classes]
    else:
        labels = []
        for part in classes.replace(" ", "").upper().split(","):
            if len(part) == 3 and part[1] == "-":
                labels += range(ord(part[0]) - 64, ord(part[2]) - 63)
            else:
                labels += [ord(c) - 64 for c in part]
    if not labels or any(not 1 <= c <= 26 for c in labels):
        raise ValueError(f"classes: expected letters A-Z such as 'A-E' or 'ABK', or labels 1-26, got {classes!r}")
    return sorted(set(labels))


#: fraction of each class held out as the test split when a file holds one split only.
HELD_OUT_FRACTION = 0.2


def held_out(labels: np.ndarray, split: str) -> np.ndarray:
    """Per class, the last HELD_OUT_FRACTION of its items (in file order) are ``test``, the rest ``train``:
    the split of a file that ships one split (offline EMNIST letters); the digits CNN is tested on it."""
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        cut = len(idx) - round(HELD_OUT_FRACTION * len(idx))
        keep[idx[cut:] if split == "test" else idx[:cut]] = True
    return keep


class _NpzImages(MemorySource):
    """Shared loader: split, label selection, optional subset, padding and scaling."""

    dataset: str = ""

    def _load(self, split: str | None, classes: list[int] | None, size: int, value_range: tuple[float, float],
              limit: int | None, download: bool, side: str | None) -> None:
        if size not in (28, 32):
            raise ValueError(f"size: expected 28 (as stored) or 32 (zero-padded by 2 pixels), got {size}")
        if side not in (None, "x0", "x1"):
            raise ValueError(f"side: expected x0, x1 or null, got {side!r}")
        path = dataset_file(self.dataset, download)
        with np.load(path) as archive:
            available = sorted(k[2:] for k in archive.files if k.startswith("x_"))
        split = split or "train"
        if split not in ("train", "test"):
            raise ValueError(f"split: expected train or test, got {split!r}")
        if len(available) > 1:
            images, labels = load_array(path, f"x_{split}"), load_array(path, f"y_{split}")
        else:  # a file with one split (the offline EMNIST letters): held out per class, as the digits CNN
            only = available[0]
            images, labels = load_array(path, f"x_{only}"), load_array(path, f"y_{only}")
            keep = held_out(labels, split)
            images, labels = images[keep], labels[keep]
        if classes is not None:
            present = sorted(set(np.unique(labels).tolist()))
            if missing := sorted(set(classes) - set(present)):
                raise ValueError(f"classes: {missing} not in {path} split {split!r}, which has labels {present}")
            keep = np.isin(labels, classes)
            images, labels = images[keep], labels[keep]
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit: expected a positive number of samples, got {limit}")
            if limit < len(images):  # a fixed random subset, so sorted files (EMNIST) keep every class
                keep = np.sort(np.random.default_rng(0).permutation(len(images))[:limit])
                images, labels = images[keep], labels[keep]
        pad = (size - 28) // 2
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))[:, None]
        scale, offset = affine_to_range(value_range)
        self.split, self.side = split, side
        super().__init__(images, name=f"{self.dataset}[{split}]", scale=scale, offset=offset,
                         labels=labels.astype(np.int64), value_range=(value_range[0], value_range[1]))


class MNIST(_NpzImages):
    """MNIST digits (LeCun et al. 1998): 60k train / 10k test, labels 0-9, one channel.

    classes: the digits to keep (all when null). limit: keep a fixed random subset of this many images.
    side: which side of the bridge this source is meant for (x0, x1, or null for either).
    """

    dataset = "mnist"

    def __init__(self, split: str = "train", classes: list[int] | None = None, size: int = 32,
                 value_range: tuple[float, float] = (-1.0, 1.0), limit: int | None = None,
                 download: bool = False, side: str | None = None) -> None:
        self._load(split, classes, size, value_range, limit, download, side)


class FashionMNIST(_NpzImages):
    """Fashion-MNIST (Xiao et al. 2017): 60k train / 10k test, labels 0-9 (T-shirt ... ankle boot)."""

    dataset = "fashion_mnist"

    def __init__(self, split: str = "train", classes: list[int] | None = None, size: int = 32,
                 value_range: tuple[float, float] = (-1.0, 1.0), limit: int | None = None,
                 download: bool = False, side: str | None = None) -> None:
        self._load(split, classes, size, value_range, limit, download, side)


class EMNISTLetters(_NpzImages):
    """EMNIST letters (Cohen et al. 2017, arXiv 1702.05373), upper and lower case merged (A=1 ... Z=26).

    classes: "A-E" by default, the subset the DSBM EMNIST <-> MNIST task uses (Shi et al. 2023); any
    letters ("A-C,K") or label numbers. split: train (null) or test. The offline
    ``emnist_letters_test10k.npz`` holds the first 10,000 test images (A-L and half of M) and no train
    split, so it is divided per class: ``test`` the last 20% of each class, ``train`` the rest (`held_out`).
    """

    dataset = "emnist_letters"

    def __init__(self, split: str | None = None, classes: str | list[int] = "A-E", size: int = 32,
                 value_range: tuple[float, float] = (-1.0, 1.0), limit: int | None = None,
                 download: bool = False, side: str | None = None) -> None:
        self._load(split, parse_letters(classes), size, value_range, limit, download, side)
