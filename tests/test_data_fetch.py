"""`sbcore data fetch`: one clear line offline, the .npz the sources read when a download works.

No test downloads: the offline case probes a closed local port, the working case a stand-in for the
torchvision class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from sbcore.cli import main
from sbcore.data import fetch as fetch_module
from sbcore.data.images import MNIST, dataset_file


def test_offline_is_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(fetch_module, "source_urls", lambda name: ["http://127.0.0.1:9/mnist/"])  # nothing listens
    assert main(["data", "fetch", "mnist", f"dir={tmp_path}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "warning: plugin" not in line]
    assert err == [f"sbcore: cannot fetch mnist: no connection to 127.0.0.1 (offline?); copy mnist.npz into "
                   f"{tmp_path} instead, or point SBCORE_DATA_DIR at a folder that holds it"]
    assert list(tmp_path.iterdir()) == []


class FakeMNIST:
    """torchvision's MNIST interface on 3 train / 2 test images whose pixel (0, 1) is the image's index."""

    mirrors = ["https://example.invalid/mnist/"]

    def __init__(self, root, train, download, **extra):
        assert download and not extra
        n = 3 if train else 2
        self.data = torch.zeros(n, 28, 28, dtype=torch.uint8)
        self.data[:, 0, 1] = torch.arange(n, dtype=torch.uint8) + 1
        self.targets = torch.arange(n) + (0 if train else 5)


def test_fetch_writes_the_npz_the_sources_read(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(fetch_module, "reachable", lambda url: True)
    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)
    monkeypatch.setenv("SBCORE_DATA_DIR", str(tmp_path))
    assert main(["data", "fetch", "mnist"]) == 0
    assert capsys.readouterr().out.strip() == f"mnist: fetched: {tmp_path / 'mnist.npz'}"
    with np.load(dataset_file("mnist")) as arrays:
        assert arrays["x_train"].shape == (3, 28, 28) and arrays["y_test"].tolist() == [5, 6]
    source = MNIST(split="test", size=28, value_range=(0.0, 255.0))
    images, _ = source.rows(0, 2)
    assert source.shape == (1, 28, 28) and images[:, 0, 0, 1].tolist() == [1.0, 2.0]
    assert main(["data", "fetch", "mnist"]) == 0  # there already: kept
    assert "already there" in capsys.readouterr().out


def test_a_failing_download_is_one_line(monkeypatch, tmp_path, capsys):
    class Broken:
        url = "https://example.invalid/fashion/"

        def __init__(self, *args, **kwargs):
            print("Downloading ... Failed to download (trying next):")
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(fetch_module, "reachable", lambda url: True)
    monkeypatch.setattr(tvd, "FashionMNIST", Broken)
    assert main(["data", "fetch", "fashion_mnist", f"dir={tmp_path}"]) == 2
    captured = capsys.readouterr()
    assert "Failed to download" not in captured.out
    (line,) = [x for x in captured.err.splitlines() if "warning: plugin" not in x]
    assert line.startswith("sbcore: cannot fetch fashion_mnist: RuntimeError: Error downloading")
    assert not (tmp_path / "fashion_mnist.npz").exists()


@pytest.mark.parametrize("items", [["fetch", "cifar"], ["get", "mnist"]])
def test_unknown_dataset_or_action_is_refused(items, capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", *items])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err
