"""MNIST / EMNIST letters / Fashion-MNIST sources read from the offline .npz files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbcore.config import structure_config
from sbcore.config_text import ConfigError
from sbcore.data.images import MNIST, DataNotFoundError, EMNISTLetters, FashionMNIST, data_dir, parse_letters


def _npz(name: str) -> np.lib.npyio.NpzFile:
    return np.load(data_dir() / name)


def test_mnist_shape_range_and_exact_values():
    source = MNIST()
    assert len(source) == 60_000 and source.shape == (1, 32, 32)
    assert source.data.dtype == torch.uint8 and source.value_range == (-1.0, 1.0)
    raw = _npz("mnist.npz")["x_train"][:3].astype(np.float32)
    decoded = source.decode(source.data[:3])
    torch.testing.assert_close(decoded[:, 0, 2:30, 2:30], torch.from_numpy(raw / 127.5 - 1.0), rtol=0, atol=1e-6)
    border = torch.ones(1, 32, 32, dtype=torch.bool)
    border[:, 2:30, 2:30] = False
    assert (decoded[:, border] == -1.0).all()  # zero padding is background
    x = source.sample(512, torch.Generator().manual_seed(0))
    assert x.shape == (512, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0


def test_size_28_and_unit_range():
    source = FashionMNIST(split="test", size=28, value_range=(0.0, 1.0))
    assert source.shape == (1, 28, 28) and len(source) == 10_000
    x = source.sample(256, torch.Generator().manual_seed(1))
    assert x.min() == 0.0 and x.max() == 1.0
    with pytest.raises(ValueError, match="size: expected 28"):
        MNIST(size=30)


def test_label_selection_counts():
    digits = MNIST(split="test", classes=[3, 7])
    assert len(digits) == 1010 + 1028  # the test split's per-class counts
    assert set(digits.labels.tolist()) == {3, 7}
    shirts = FashionMNIST(split="test", classes=[0])
    assert len(shirts) == 1000 and set(shirts.labels.tolist()) == {0}
    with pytest.raises(ValueError, match=r"classes: \[11\] not in"):
        MNIST(split="test", classes=[11])


def test_emnist_letters_offline_file_is_divided_per_class_into_train_and_test():
    """The offline file holds 800 of each letter A-L: train is the first 640 of each class, test the last 160."""
    letters = EMNISTLetters()
    assert letters.split == "train"
    assert len(letters) == 3200 and letters.shape == (1, 32, 32)
    assert torch.bincount(letters.labels).tolist() == [0, 640, 640, 640, 640, 640]
    held = EMNISTLetters(split="test")
    assert torch.bincount(held.labels).tolist() == [0, 160, 160, 160, 160, 160]
    raw = np.load(data_dir() / "emnist_letters_test10k.npz")
    a_images = raw["x_test"][raw["y_test"] == 1]  # file order: the first 640 train, the last 160 test
    train_a = EMNISTLetters(classes="A", size=28, split="train").data[:, 0]
    test_a = EMNISTLetters(classes="A", size=28, split="test").data[:, 0]
    assert np.array_equal(train_a.numpy(), a_images[:640]) and np.array_equal(test_a.numpy(), a_images[640:])
    some = EMNISTLetters(classes="A-C,K")
    assert set(some.labels.tolist()) == {1, 2, 3, 11} and len(some) == 2560
    assert EMNISTLetters(classes=[12, 13]).labels.unique().tolist() == [12, 13]
    with pytest.raises(ValueError, match="split: expected train or test"):
        EMNISTLetters(split="val")


def test_parse_letters():
    assert parse_letters("A-E") == [1, 2, 3, 4, 5]
    assert parse_letters("a, c-d") == [1, 3, 4]
    assert parse_letters([26, 1, 1]) == [1, 26]
    for bad in ("", "A-5", [0], "Ä"):
        with pytest.raises(ValueError, match="classes: expected letters"):
            parse_letters(bad)


def test_limit_is_a_fixed_subset_keeping_every_class():
    a, b = EMNISTLetters(limit=500), EMNISTLetters(limit=500)
    assert len(a) == 500 and torch.equal(a.data, b.data)
    assert set(a.labels.tolist()) == {1, 2, 3, 4, 5}  # the file is label-sorted; a prefix would be all 'A'


def test_determinism_under_a_seed():
    source = MNIST(split="test")
    one = source.sample(64, torch.Generator().manual_seed(5))
    two = source.sample(64, torch.Generator().manual_seed(5))
    other = source.sample(64, torch.Generator().manual_seed(6))
    assert torch.equal(one, two) and not torch.equal(one, other)


def test_missing_file_says_where_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("SBCORE_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as err:
        FashionMNIST()
    text = str(err.value)
    assert str(tmp_path / "nowhere" / "fashion_mnist.npz") in text
    assert "download: true" in text and "torchvision.datasets.FashionMNIST" in text
    assert "SBCORE_DATA_DIR" in text and "x_train" in text
    with pytest.raises(DataNotFoundError, match="emnist_letters_test10k.npz"):
        EMNISTLetters()


def test_default_data_dir(monkeypatch):
    monkeypatch.delenv("SBCORE_DATA_DIR")
    assert data_dir() == data_dir().home() / ".cache" / "sbcore" / "data"


def test_registered_and_validated_by_the_config(plugins, tiny_gaussian):
    registry = plugins.registry
    assert registry.get("dataset", "mnist") is MNIST
    assert registry.get("dataset", "emnist_letters") is EMNISTLetters
    assert registry.get("dataset", "fashion_mnist") is FashionMNIST
    ok = dict(tiny_gaussian, data={"x0": {"source": "mnist", "split": "test", "classes": [1, 2]},
                                   "x1": {"source": "emnist_letters", "classes": "A-E", "value_range": [0, 1]}})
    config = structure_config(ok, registry)
    assert config.data.x1.params["value_range"] == (0.0, 1.0)
    bad = dict(tiny_gaussian, data={"x0": {"source": "mnist", "split": "test", "clases": [1]},
                                    "x1": {"source": "emnist_letters", "size": "32"}})
    with pytest.raises(ConfigError) as err:
        structure_config(bad, registry)
    assert "config.data.x0" in str(err.value) and "config.data.x1" in str(err.value)


@pytest.mark.parametrize("name", ["mnist_emnist", "mnist_shards", "arrays_pairs", "afhq_cat_dog"])
def test_example_configs_validate(plugins, name):
    from pathlib import Path

    from sbcore.config_text import read_yaml_file

    path = Path(__file__).resolve().parents[1] / "examples" / "data" / f"{name}.yaml"
    config = structure_config(read_yaml_file(path), plugins.registry)
    sources = [config.data.x0, config.data.x1] if config.data.pairs is None else [config.data.pairs]
    assert {s.kind for s in sources} <= {"mnist", "emnist_letters", "shards", "arrays", "image_folder"}
