"""The `image_folder` source: class subfolders, resize / crop / pad, flips drawn from the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sbcore.data.image_folder import ImageFolderSource
from sbcore.errors import DataError


@pytest.fixture
def folder(tmp_path):
    """cat/ and dog/ with 3 and 2 RGB images of 20 x 40 (H x W); pixel (r, c) = (r, c, class)."""
    rows, cols = np.meshgrid(np.arange(20), np.arange(40), indexing="ij")
    for label, (name, count) in enumerate([("cat", 3), ("dog", 2)]):
        (tmp_path / name).mkdir()
        for i in range(count):
            rgb = np.stack([rows * 10, cols * 5, np.full_like(rows, 100 * label + i)], axis=-1).astype(np.uint8)
            Image.fromarray(rgb).save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_classes_and_labels(folder):
    both = ImageFolderSource(root=str(folder), size=16)
    assert len(both) == 5 and both.shape == (3, 16, 16) and both.labels.tolist() == [0, 0, 0, 1, 1]
    dogs = ImageFolderSource(root=str(folder), classes=["dog"], size=16)
    assert len(dogs) == 2 and dogs.class_names == ["dog"]
    assert dogs.data[:, 2, 8, 8].tolist() == [100, 101]  # blue channel encodes class and index
    with pytest.raises(ValueError, match=r"no class subfolder\(s\) \['cow'\]; it has \['cat', 'dog'\]"):
        ImageFolderSource(root=str(folder), classes=["cow"])


def test_resize_modes(folder):
    crop = ImageFolderSource(root=str(folder), classes=["cat"], size=10, resize="shorter")
    assert crop.data.shape == (3, 3, 10, 10) and crop.data.min() < crop.data[:, 1].max()
    padded = ImageFolderSource(root=str(folder), classes=["cat"], size=10, resize="pad")
    # 20 x 40 scaled by 10/40 -> 5 x 10, centred in 10 x 10: rows 0-1 and 7-9 are black padding
    assert (padded.data[:, :, :2] == 0).all() and (padded.data[:, :, 7:] == 0).all()
    assert (padded.data[:, :, 2:7].amax(dim=(1, 3)) > 0).all()
    stretched = ImageFolderSource(root=str(folder), classes=["cat"], size=10, resize="stretch")
    assert stretched.data[0, 0, :, 5].tolist() == sorted(stretched.data[0, 0, :, 5].tolist())  # rows still ordered
    none = ImageFolderSource(root=str(folder), classes=["cat"], size=8, resize="none")
    assert none.data[0, 1, 0].tolist() == [5 * c for c in range(16, 24)]  # the centre 8 x 8 of the original
    gray = ImageFolderSource(root=str(folder), size=8, channels=1)
    assert gray.shape == (1, 8, 8)
    with pytest.raises(ValueError, match="resize: expected shorter, pad, stretch or none"):
        ImageFolderSource(root=str(folder), resize="zoom")


def test_values_flip_and_determinism(folder):
    plain = ImageFolderSource(root=str(folder), size=8, resize="none")
    flips = ImageFolderSource(root=str(folder), size=8, resize="none", hflip=True)
    x = plain.sample(200, torch.Generator().manual_seed(0))
    assert x.min() >= -1 and x.max() <= 1 and plain.value_range == (-1.0, 1.0)
    y = flips.sample(200, torch.Generator().manual_seed(0))
    assert torch.equal(y, flips.sample(200, torch.Generator().manual_seed(0)))
    mirrored = (y[:, 1, 0, 0] > y[:, 1, 0, -1])  # the green channel increases left to right unless flipped
    assert 60 < int(mirrored.sum()) < 140
    originals = {tuple(r.flatten().tolist()) for r in plain.decode(plain.data)}
    unflipped = [r.flip(-1) if m else r for r, m in zip(y, mirrored, strict=True)]
    assert all(tuple(r.flatten().tolist()) in originals for r in unflipped)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderSource(root=str(tmp_path / "none"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty: no images .* found in the class folders \['a'\]"):
        ImageFolderSource(root=str(tmp_path / "empty"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x\.png: not a readable image"):
        ImageFolderSource(root=str(tmp_path / "broken"))
