"""Guidance: a `Predictor` steered towards a class, so every sampler gains it at once.

classifier-free (Ho & Salimans 2022, eq. (6), written with s = 1 + w as in diffusers and Imagen):
    out = out(x, t, null) + s (out(x, t, y) - out(x, t, null))
s = 1 is the plain conditional model, s = 0 the unconditional one, s > 1 pushes past the conditional. The
combination is affine with weights summing to one, and every conversion a process makes (drift, end point,
eps) is affine in the output for fixed x, so mixing outputs equals mixing drifts: it holds for any
`predict`. Both halves run as one batch of 2B (one network call per step, twice the rows).

classifier (Dhariwal & Nichol 2021, Algorithm 2 and eq. (14)): with a noisy classifier p_phi(y | x_t, t),
    eps_hat = eps - s b(t) grad_x log p_phi(y | x_t, t),
b(t) the noise scale of x_t = a(t) x_0 + b(t) eps (sqrt(1 - abar) on VP). This is the score of p_t(x | y)
up to the scale, so integrating eps_hat with DDIM is their classifier-guided DDIM. The guided Predictor
outputs eps, whatever the wrapped one predicts.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from sbcore.process.base import expand_t
from sbcore.sampler.base import Predictor


def null_label(network: Any) -> int:
    """The label a network reads as 'no class' (`UNet(num_classes=K)`: K); refused when it has none."""
    classes = getattr(network, "num_classes", 0)
    if not classes or not getattr(network, "has_null_label", True):
        raise ValueError(f"classifier-free guidance needs a class-conditional network with a null label "
                         f"(network.num_classes on kind unet), got {type(network).__name__}")
    return int(classes)


class ClassifierFree:
    """The network of `classifier_free`: conditional and null-label outputs mixed with scale s."""

    def __init__(self, network: Any, label: Tensor | int, scale: float, null: int) -> None:
        self.network, self.label, self.scale, self.null = network, label, float(scale), null

    def __call__(self, x: Tensor, t: Tensor, **inputs: Any) -> Tensor:
        b = x.shape[0]
        label = torch.as_tensor(self.label, device=x.device).long().expand(b)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(b)
        both = {k: torch.cat([v, v]) for k, v in inputs.items()}
        out = self.network(torch.cat([x, x]), torch.cat([t, t]),
                           label=torch.cat([label, torch.full_like(label, self.null)]), **both)
        cond, uncond = out[:b], out[b:]
        return uncond + self.scale * (cond - uncond)


def classifier_free(predictor: Predictor, label: Tensor | int, scale: float) -> Predictor:
    """`predictor` guided towards `label` with classifier-free scale s (module docstring)."""
    guided = ClassifierFree(predictor.network, label, scale, null_label(network_module(predictor)))
    return Predictor(guided, predictor.process, predictor.direction, predictor.predict, predictor.cond)


class ClassifierGuided:
    """The network of `classifier_guided`: eps corrected by the classifier's gradient."""

    def __init__(self, predictor: Predictor, classifier: nn.Module, label: Tensor | int, scale: float) -> None:
        self.predictor, self.classifier, self.label, self.scale = predictor, classifier, label, float(scale)

    def __call__(self, x: Tensor, t: Tensor, **inputs: Any) -> Tensor:
        p = self.predictor  # its own label and cond: the outer Predictor holds the same cond
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        eps = p.process.eps(p.predict, p.network(x, t, **p.inputs()), x, t, p.direction)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = self.classifier(xg, t)
            label = torch.as_tensor(self.label, device=x.device).long().expand(x.shape[0])
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            chosen = torch.log_softmax(logits, dim=-1).gather(1, label[:, None]).sum()
            grad = torch.autograd.grad(chosen, xg)[0]
        b = p.process.coefficients(t)[1]
        return eps - self.scale * expand_t(b, x) * grad.to(eps.dtype)


def classifier_guided(predictor: Predictor, classifier: nn.Module, label: Tensor | int, scale: float) -> Predictor:
    """`predictor` (conditional or not) guided by `classifier`'s gradient towards `label` (module docstring)."""
    guided = ClassifierGuided(predictor, classifier, label, scale)
    return Predictor(guided, predictor.process, predictor.direction, "eps", predictor.cond)


@attrs.frozen
class Guidance:
    """What a sampled class is steered by: `label` (an int or a (B,) tensor), the scale s and an optional
    noisy classifier. Without a classifier s is the classifier-free scale (1: the conditional model
    alone); with one, s scales the classifier's gradient, and the network sees `label` when it is
    class-conditional and `conditional` (Dhariwal & Nichol guide their conditional ImageNet models so),
    else it runs unconditioned (a class-conditional network at its null label).
    """

    label: Tensor | int
    scale: float = 1.0
    classifier: nn.Module | None = None
    conditional: bool = True


def network_module(predictor: Predictor) -> Any:
    """The module behind a Predictor's callable (a method's wrapper such as DDIB's EpsModel holds it as .network)."""
    return getattr(predictor.network, "network", predictor.network)


def guide(predictor: Predictor, guidance: Guidance) -> Predictor:
    """`predictor` steered by `guidance` (module docstring)."""
    if guidance.classifier is not None:
        labelled = guidance.conditional and getattr(network_module(predictor), "num_classes", 0)
        base = Predictor(predictor.network, predictor.process, predictor.direction, predictor.predict,
                         predictor.cond, guidance.label if labelled else None)
        return classifier_guided(base, guidance.classifier, guidance.label, guidance.scale)
    if guidance.scale == 1.0:
        return Predictor(predictor.network, predictor.process, predictor.direction, predictor.predict,
                         predictor.cond, guidance.label)
    return classifier_free(predictor, guidance.label, guidance.scale)


def uniform_labels(source: Any, n: int, generator: torch.Generator) -> Tensor:
    """n classes drawn uniformly from those of a labelled data source: guiding each input towards its own drawn
    class makes the whole domain, not one class, the target (``target_label=random``)."""
    labels = getattr(source, "labels", None)
    if labels is None:
        raise ValueError(f"{source!r} has no class labels to draw target classes from")
    classes = torch.as_tensor(labels).unique()
    return classes[torch.randint(len(classes), (n,), generator=generator)]


def make_guidance(label: int | Tensor | None, options: dict[str, Any] | None, registry: Any, device: Any = "cpu"
                  ) -> Guidance | None:
    """A Guidance from command options: ``label=K`` and ``guidance.scale=S`` / ``guidance.classifier=FILE``
    (a weights file of a classifier, `sbcore import-weights`); `label` may hold one class per input (a (N,)
    tensor). None when neither a label nor guidance is given."""
    from pathlib import Path

    from sbcore.errors import UserError
    from sbcore.network.weights import load_network_file

    options = dict(options or {})
    unknown = sorted(set(options) - {"scale", "classifier"})
    if unknown:
        raise UserError(f"guidance.{unknown[0]}: unknown; guidance takes scale and classifier")
    if label is None:
        if options:
            raise UserError("guidance steers towards a class: give the label (label=K or target_label=K)")
        return None
    try:
        scale = float(options.get("scale", 1.0))
    except (TypeError, ValueError):
        raise UserError(f"guidance.scale={options['scale']}: expected a number") from None
    if not math.isfinite(scale) or isinstance(options.get("scale"), bool):
        raise UserError(f"guidance.scale={options['scale']}: expected a finite number")
    classifier = None
    if options.get("classifier") is not None:
        path = Path(str(options["classifier"]))
        if not path.is_file():
            raise UserError(f"guidance.classifier={path}: file not found (a weights file from sbcore import-weights)")
        classifier, info = load_network_file(path, registry)
        if info.registry != "classifier":
            raise UserError(f"guidance.classifier={path}: holds a {info.kind}, not a classifier")
        classifier = classifier.to(device)
    return Guidance(label if isinstance(label, Tensor) else int(label), scale, classifier)
