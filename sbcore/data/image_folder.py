"""A folder of images (AFHQ / CelebA style), loaded once into memory as uint8.

Layout: ``root/*.png`` (one class), or ``root/<class>/**/*.jpg`` with class subfolders, of which
`classes` selects some (AFHQ: ``root: afhq/train, classes: [cat]`` on one side and ``[dog]`` on the
other). The deterministic transforms (resize, center crop, pad) run once at load time through
torchvision; the random horizontal flip runs on each draw with the run's data generator. Folders too
large for memory go through `sbcore shards write` and the `shards` source instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sbcore.data.memory import MemorySource, affine_to_range
from sbcore.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def list_images(root: Path, classes: list[str] | None) -> tuple[list[Path], list[int], list[str]]:
    """Image files under `root` (sorted), their class indices and the class names used."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found")
    subfolders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is not None:
        if missing := sorted(set(classes) - set(subfolders)):
            raise ValueError(f"{root}: no class subfolder(s) {missing}; it has {subfolders or '(none)'}")
        names = list(classes)
    else:
        names = subfolders
    files: list[Path] = []
    labels: list[int] = []
    folders = [(root / n, i) for i, n in enumerate(names)] if names else [(root, 0)]
    for folder, label in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        labels += [label] * len(found)
    if classes is None and names:  # images directly in root count too, as their own class
        top = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += top
        labels += [len(names)] * len(top)
    if not files:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found"
                         + (f" in the class folders {names}" if names else ""))
    return files, labels, names


#: the most pixels one image file may hold (a 8192 x 8192 picture): a small compressed file that
#: claims more is a decompression bomb, refused from its header before anything is decoded.
MAX_PIXELS = 8192 * 8192

#: modes converted explicitly to 8-bit L or RGB; anything else (32-bit float, ...) is refused, not guessed.
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_CONVERTIBLE = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")


def read_image(file: Path, channels: int) -> Tensor:
    """One image file as (channels, H, W) uint8, converted explicitly; a `DataError` when it cannot be.

    16-bit grayscale is scaled to 8 bits (value >> 8, not clipped); palette, CMYK, YCbCr, LAB and
    images with alpha convert to L or RGB through PIL's conversions (alpha dropped); an image larger
    than `MAX_PIXELS` or in a mode without a faithful 8-bit form (32-bit float, 32-bit integer
    values beyond 16 bits) is refused."""
    from torchvision.transforms.v2 import functional as F  # noqa: N812 - imported on use (startup)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise DataError(f"{file}: {width} x {height} pixels is more than the {MAX_PIXELS} an image "
                                    "may have (a decompression bomb?); resize it first")
                if img.mode in _SIXTEEN_BIT:
                    wide = np.asarray(img, dtype=np.int64)
                    if wide.min(initial=0) < 0 or wide.max(initial=0) > 65535:
                        raise DataError(f"{file}: {img.mode} pixels outside 0..65535; save it as 8 or 16 bits")
                    gray = torch.from_numpy((wide >> 8).astype(np.uint8))[None]
                    return gray.expand(channels, -1, -1).clone() if channels == 3 else gray
                if img.mode not in _CONVERTIBLE:
                    raise DataError(f"{file}: image mode {img.mode} has no faithful 8-bit form; "
                                    "save it as 8-bit grayscale or RGB")
                rgb_like = img.convert("RGBA").convert("RGB") if img.mode in ("P", "PA") else img
                return F.pil_to_tensor(rgb_like.convert("RGB" if channels == 3 else "L"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{file}: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # unreadable, truncated, not an image
        raise DataError(f"{file}: not a readable image: {exc}") from None


def fit(pixels: Tensor, size: int, resize: str) -> Tensor:
    """(C, H, W) uint8 -> (C, size, size) by the `resize` rule of `ImageFolderSource`."""
    from torchvision.transforms.v2 import functional as F  # imported on use: keeps `sbcore --help` fast

    h, w = pixels.shape[-2:]
    if resize == "stretch":
        pixels = F.resize(pixels, [size, size], antialias=True)
    elif resize in ("shorter", "pad"):
        scale = size / (min(h, w) if resize == "shorter" else max(h, w))
        pixels = F.resize(pixels, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)
    return F.center_crop(pixels, [size, size])  # crops what is larger, zero-pads what is smaller


TEST_FOLDERS = ("test", "val")


def split_folder(root: Path, split: str | None) -> Path:
    """The folder of `split`: `root` itself for train; for test, ``root/test`` or ``root/val``, or the
    sibling ``test``/``val`` of a ``root`` named ``train`` (AFHQ's ``afhq/train`` -> ``afhq/val``)."""
    if split in (None, "train"):
        return root
    if split != "test":
        raise ValueError(f"split: expected train or test, got {split!r}")
    candidates = [root / name for name in TEST_FOLDERS]
    if root.name == "train":
        candidates += [root.parent / name for name in TEST_FOLDERS]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ValueError(f"split: {root} has no test split (looked for {', '.join(map(str, candidates))})")


class ImageFolderSource(MemorySource):
    """Images of one folder tree at `size` x `size`, values mapped from 0..255 to `value_range`.

    resize: "shorter" scales the shorter side to `size` then center-crops (aspect kept, edges cut);
    "pad" scales the longer side to `size` then pads with black (nothing cut); "stretch" resizes to
    size x size; "none" only center-crops (or pads) to `size`. channels: 3 (RGB) or 1 (grayscale).
    hflip: mirror each drawn image with probability 1/2. limit: keep the first N files.
    split: null or train reads `root`; test reads the held-out folder beside it (`split_folder`).
    """

    def __init__(
        self,
        root: str = "",
        classes: list[str] | None = None,
        size: int = 64,
        resize: str = "shorter",
        channels: int = 3,
        hflip: bool = False,
        value_range: tuple[float, float] = (-1.0, 1.0),
        limit: int | None = None,
        side: str | None = None,
        split: str | None = None,
    ) -> None:
        if not root:
            raise ValueError("root: give the image folder")
        if resize not in ("shorter", "pad", "stretch", "none"):
            raise ValueError(f"resize: expected shorter, pad, stretch or none, got {resize!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels: expected 1 (grayscale) or 3 (RGB), got {channels}")
        if size < 1:
            raise ValueError(f"size: expected a positive number of pixels, got {size}")
        folder = split_folder(Path(root).expanduser(), split)
        files, labels, names = list_images(folder, classes)
        if limit is not None:
            files, labels = files[:limit], labels[:limit]
        images = np.empty((len(files), channels, size, size), dtype=np.uint8)
        for i, file in enumerate(files):
            images[i] = fit(read_image(file, channels), size, resize).numpy()
        scale, offset = affine_to_range(value_range)
        self.root, self.class_names, self.side = folder, names, side
        super().__init__(images, name=str(folder) + (f"{names}" if classes else ""), scale=scale, offset=offset,
                         labels=np.asarray(labels), value_range=(value_range[0], value_range[1]), hflip=hflip)
