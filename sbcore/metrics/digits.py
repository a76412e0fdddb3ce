"""A small CNN trained by sbcore on MNIST, EMNIST letters and Fashion-MNIST, and the metrics built on it.

The network classifies 28x28 grayscale images into 33 classes: digits 0-9, letters A-M (the letters
the offline EMNIST file holds; upper and lower case merged) and the 10 Fashion-MNIST classes. Summing
its class probabilities per block gives the *domain* (digits, letters or fashion) of an image.

Two metrics use it, for image translation between these domains (e.g. EMNIST -> MNIST, as in DSBM):

* ``feature_distance`` -- the Fréchet distance between Gaussians fitted to the CNN's penultimate
  (128-d) features of two image sets. It has the form of FID (Heusel et al. 2017, eq. 6) but it is
  **not Inception FID**: the feature space is this small CNN's, so its values are not comparable to
  published FID numbers; compare runs with each other, not with papers.
* ``domain_accuracy`` -- the fraction of generated images that the CNN assigns to the target domain.

The weights ship in the package (``digits_cnn.safetensors``); ``python -m sbcore.metrics.train_digits``
reproduces them from the offline ``.npz`` files in ``$SBCORE_DATA_DIR`` and their SHA-256 is checked on
every load, so a metric value always refers to the same feature extractor.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from sbcore.data.images import data_dir, held_out
from sbcore.metrics.base import Metric
from sbcore.metrics.gaussian import bw2, fit_gaussian
from sbcore.metrics.inception import FID

WEIGHTS = Path(__file__).with_name("digits_cnn.safetensors")
#: SHA-256 of the shipped weights file; `load_digits_cnn` refuses any other file.
WEIGHTS_SHA256 = "a37c070ea29f9021c354c372a4c28cd2c28afb759d83aca895363de1cc0a2223"
DOMAINS = ("digits", "letters", "fashion")
#: number of classes of each domain, in the order of DOMAINS (letters: A-M, the offline EMNIST subset).
DOMAIN_CLASSES = (10, 13, 10)
NUM_CLASSES = sum(DOMAIN_CLASSES)
#: first class index of each domain.
OFFSETS = dict(zip(DOMAINS, np.cumsum((0, *DOMAIN_CLASSES[:-1])).tolist(), strict=True))
FILES = {"digits": "mnist.npz", "letters": "emnist_letters_test10k.npz", "fashion": "fashion_mnist.npz"}
FEATURE_DIM = 128


class DigitsCNN(nn.Module):
    """Five 3x3 conv layers with batch norm, global average pooling, a 128-d feature layer, 33 logits."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.features = nn.Sequential(nn.Linear(128, FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, NUM_CLASSES))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, 1, 28, 28) in [-1, 1] -> (features (B, 128), logits (B, 33))."""
        feats = self.features(self.body(x))
        return feats, self.head(feats)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def load_digits_cnn(path: Path = WEIGHTS, sha256: str | None = WEIGHTS_SHA256) -> DigitsCNN:
    """The shipped CNN in eval mode, after checking the file's SHA-256 (pass sha256=None to skip)."""
    if not path.is_file():
        raise FileNotFoundError(f"digits CNN weights not found at {path}; reinstall sbcore or run "
                                "`python -m sbcore.metrics.train_digits`")
    if sha256 is not None and (found := sha256_of(path)) != sha256:
        raise ValueError(f"{path}: SHA-256 {found} does not match the expected {sha256}; the feature "
                         "distance would not be comparable with other runs")
    net = DigitsCNN()
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def to_cnn_input(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Bring (B, C, H, W) images to the CNN's (B, 1, 28, 28) in [-1, 1].

    Colour is averaged to gray; 32x32 images (28x28 zero-padded by 2, as DBFS/I2SB set-ups use) are
    center-cropped back to 28x28; any other size is resized bilinearly.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    lo, hi = value_range
    x = images.detach().float().mean(1, keepdim=True)
    x = (x - lo) / (hi - lo) * 2 - 1
    h, w = x.shape[-2:]
    if (h, w) == (32, 32):
        x = x[..., 2:30, 2:30]
    elif (h, w) != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(-1, 1)


@torch.no_grad()
def cnn_outputs(images: Tensor, batch_size: int = 1000, value_range: tuple[float, float] = (-1.0, 1.0)
                ) -> tuple[Tensor, Tensor]:
    """(features (N, 128), class probabilities (N, 33)) of images (N, C, H, W), on the CPU."""
    net = load_digits_cnn()
    feats, probs = [], []
    for chunk in images.split(batch_size):
        f, logits = net(to_cnn_input(chunk.cpu(), value_range))
        feats.append(f)
        probs.append(logits.softmax(-1))
    return torch.cat(feats), torch.cat(probs)


def domain_probabilities(probs: Tensor) -> Tensor:
    """Class probabilities (N, 33) -> domain probabilities (N, 3), in the order of DOMAINS."""
    return torch.stack([blk.sum(-1) for blk in probs.split(list(DOMAIN_CLASSES), dim=-1)], dim=-1)


def predict_domain(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """The index (into DOMAINS) of the most probable domain of each image."""
    return domain_probabilities(cnn_outputs(images, value_range=value_range)[1]).argmax(-1)


def domain_accuracy(generated: Tensor, target: Tensor | str, value_range: tuple[float, float] = (-1.0, 1.0)
                    ) -> float:
    """Fraction of `generated` images the CNN assigns to the target domain.

    `target` is a domain name, or a batch of real target images whose majority domain is used.
    """
    if isinstance(target, str):
        if target not in DOMAINS:
            raise ValueError(f"unknown domain {target!r}; known: {', '.join(DOMAINS)}")
        index = DOMAINS.index(target)
    else:
        index = int(predict_domain(target, value_range).mode().values)
    return float((predict_domain(generated, value_range) == index).double().mean())


def class_set_accuracy(generated: Tensor, classes: Tensor | list[int],
                       value_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """Fraction of `generated` images whose single most probable CNN class is one of `classes` (global indices).

    Stricter than `domain_accuracy`, which sums a domain's probabilities: a stroke the CNN finds half "1" and
    half "l" counts as a letter there, but as a letter A-E here only when one of A-E wins outright."""
    top = cnn_outputs(generated, value_range=value_range)[1].argmax(-1)
    return float(torch.isin(top, torch.as_tensor(classes)).double().mean())


def feature_distance(generated: Tensor, target: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """Fréchet distance between the CNN features of two image sets (FID's formula; NOT Inception FID)."""
    a = cnn_outputs(generated, value_range=value_range)[0]
    b = cnn_outputs(target, value_range=value_range)[0]
    if min(len(a), len(b)) < 2:
        raise ValueError("feature_distance needs at least 2 images on each side")
    return float(bw2(*fit_gaussian(a), *fit_gaussian(b)))


class FeatureDistance(FID):
    """Fréchet distance in the digits CNN's feature space to the target data or to reference statistics
    (`sbcore.metrics.inception.FID` with ``extractor: digits``; not Inception FID)."""

    default_extractor = "digits"


class DomainAccuracy(Metric):
    """Fraction of outputs the digits CNN assigns to the target data's (majority) domain."""

    images_only = True

    def __call__(self, generated: Tensor, reference: Tensor, generator: torch.Generator) -> float:
        return domain_accuracy(generated, reference)


# ---- the offline data the CNN is trained and tested on -----------------------------------------


def load_domain(domain: str, split: str, root: Path | None = None) -> tuple[Tensor, Tensor]:
    """(images (N, 1, 28, 28) float in [-1, 1], global class labels (N,)) of one domain's split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = (root or data_dir()) / FILES[domain]
    if not path.is_file():
        needed = ", ".join(FILES.values())
        raise FileNotFoundError(f"{path} not found; set SBCORE_DATA_DIR to the folder holding {needed}")
    archive = np.load(path)
    if domain == "letters":
        x, y = archive["x_test"], archive["y_test"].astype(np.int64) - 1
        keep = held_out(y, split)  # the letters source's own train/test division
        x, y = x[keep], y[keep]
    else:
        x, y = archive[f"x_{split}"], archive[f"y_{split}"].astype(np.int64)
    images = torch.from_numpy(x).float().div(127.5).sub(1).unsqueeze(1)
    return images, torch.from_numpy(y) + OFFSETS[domain]
