"""Class-guided DDIB translation (Su et al. 2023, Sec. 4.3: ImageNet class-to-class translation with a
class-conditional model and a noisy classifier, Dhariwal & Nichol 2021).

Encoding runs the source model conditioned on `source_label` (or unconditioned); decoding runs the target
model conditioned on `target_label`, steered by the core's guidance (`sbcore.sampler.guidance`): a noisy
classifier (`guidance.classifier=FILE.safetensors` from ``sbcore import-weights``, scale `guidance.scale`)
or, without one, classifier-free guidance with that scale. Encoding stays unguided so that it is the
plain ODE inversion DDIB relies on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sbcore.errors import UserError
from sbcore.metrics.digits import OFFSETS, cnn_outputs
from sbcore.plugins import get_plugins
from sbcore.sampler.guidance import Guidance, make_guidance, uniform_labels

#: digits-CNN class of label k of each labelled image source (EMNIST letters are numbered from A = 1).
CNN_CLASS = {"mnist": lambda k: OFFSETS["digits"] + k, "fashion_mnist": lambda k: OFFSETS["fashion"] + k,
             "emnist_letters": lambda k: OFFSETS["letters"] + k - 1}


def guidance_options(source: int | None, target: int | Tensor | None, guidance: dict[str, Any],
                     device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `sample` options of the encode and the decode half (each {} or {"guidance": Guidance}), from
    translate's ``source_label``, ``target_label`` (a class, or one per input) and ``guidance.scale`` /
    ``guidance.classifier``."""
    if guidance and target is None:
        raise UserError(f"{', '.join(sorted('guidance.' + k for k in guidance))} steer the decoding towards a class: "
                        "give target_label=K")
    decode = make_guidance(target, guidance, get_plugins().registry, device)
    encode = {} if source is None else {"guidance": Guidance(source)}
    return encode, ({} if decode is None else {"guidance": decode})


def random_labels(trainer: Any, n: int, generator: torch.Generator) -> Tensor:
    """``target_label=random``: one class per input, uniform over the classes of a class-conditional run's data."""
    if not getattr(trainer, "num_classes", 0) or getattr(trainer.sources["x0"], "labels", None) is None:
        raise UserError("target_label=random: the target run is not class-conditional (network.num_classes) "
                        "on labelled data")
    return uniform_labels(trainer.sources["x0"], n, generator)


def draw_class(trainer: Any, n: int, label: int, generator: torch.Generator) -> Tensor:
    """n samples of class `label` from a run's own data (rows drawn with replacement, others skipped)."""
    source = trainer.sources["x0"]
    if getattr(source, "labels", None) is None or not bool((source.labels == label).any()):
        raise UserError(f"source_label={label}: the source run's data has no such class label; give input=FILE")
    parts, got = [], 0
    while got < n:
        twin = torch.Generator().set_state(generator.get_state())
        labels = source.labels_of_draw(4 * n, twin)
        x = source.sample(4 * n, generator)[labels == label]
        parts.append(x)
        got += len(x)
    return torch.cat(parts)[:n]


def class_accuracy(trainer: Any, images: Tensor, label: int) -> float | None:
    """Fraction of `images` the digits CNN (sbcore.metrics.digits) puts in class `label` of the run's data
    source; None where that source is not one of the CNN's domains."""
    name = trainer.run.config.data.x0.kind if trainer.run.config.data.x0 is not None else None
    if name not in CNN_CLASS or images.ndim != 4 or images.shape[1] != 1:
        return None
    probs = cnn_outputs(images.float().cpu())[1]
    return float((probs.argmax(-1) == CNN_CLASS[name](label)).double().mean())
