"""Classifier accuracy (CA): the fraction of outputs a pretrained classifier assigns to the class of their
input, with the class read from the input's source labels -- I2SB's accuracy of a ResNet-50 on ImageNet
restorations (Liu et al. 2023, Sec. 5.1), and, offline, the shipped digits CNN on digits, letters or
clothes (`sbcore.metrics.digits`).

A torchvision classifier comes from a local safetensors file (``weights:``; ``sbcore import-weights`` or
``safetensors.torch.save_file(model.state_dict())`` makes one), never from a download; its inputs are
mapped from [-1, 1] to ImageNet's normalisation at 224 x 224, gray repeated to RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from sbcore.metrics.base import Metric, Reference
from sbcore.metrics.digits import DOMAINS, OFFSETS, cnn_outputs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def digits_classes(labels: Tensor, domain: str) -> Tensor:
    """A source's labels as the digits CNN's global classes (EMNIST letters count from 1)."""
    return labels.long() - (1 if domain == "letters" else 0) + OFFSETS[domain]


class TorchvisionClassifier:
    """A torchvision architecture with weights from a local safetensors file, in eval mode."""

    def __init__(self, arch: str, weights: str) -> None:
        from safetensors.torch import load_file
        from torchvision import models

        if not Path(weights).is_file():
            raise ValueError(f"weights: classifier weights {weights} not found (a safetensors state dict)")
        try:
            self.network = models.get_model(arch, weights=None)
        except ValueError as exc:
            raise ValueError(f"arch: {exc}") from None
        self.network.load_state_dict(load_file(weights))
        self.network.eval()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        from torchvision.transforms.v2 import functional as F  # noqa: N812

        x = (images.float().cpu() + 1) / 2
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.resize(x, [224, 224], antialias=True)
        x = F.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
        return self.network(x).argmax(-1)


class ClassifierAccuracy(Metric):
    """Fraction of outputs classified as their input's class.

    classifier: digits (the shipped CNN; `domain` says whose labels the source carries) or torchvision
    (`arch` with `weights`, a safetensors file; labels are the classifier's class indices)."""

    reference: ClassVar[Reference] = "translation"
    images_only = True
    needs_labels = True

    def __init__(self, classifier: str = "digits", domain: str = "digits", arch: str = "resnet50",
                 weights: str | None = None, batch_size: int = 200) -> None:
        if classifier not in ("digits", "torchvision"):
            raise ValueError(f"classifier: expected digits or torchvision, got {classifier!r}")
        if domain not in DOMAINS:
            raise ValueError(f"domain: expected one of {', '.join(DOMAINS)}, got {domain!r}")
        if classifier == "torchvision" and not weights:
            raise ValueError("weights: a torchvision classifier needs its weights file (safetensors)")
        self.classifier, self.domain, self.batch_size = classifier, domain, batch_size
        self.network = TorchvisionClassifier(arch, weights) if classifier == "torchvision" else None

    def predict(self, images: Tensor) -> Tensor:
        if self.network is None:
            return cnn_outputs(images, batch_size=self.batch_size)[1].argmax(-1)
        return torch.cat([self.network(chunk) for chunk in images.split(self.batch_size)])

    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        target = digits_classes(labels, self.domain) if self.network is None else labels.long()
        return float((self.predict(images) == target).double().mean())

    def __call__(self, generated: Tensor, reference: Any, generator: torch.Generator) -> float:
        return self.accuracy(generated, reference.labels)
