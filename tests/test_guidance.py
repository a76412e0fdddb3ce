"""Class conditioning and guidance: labels into the UNet, classifier-free and classifier guidance as
wrapped Predictors, checked against their formulas on networks whose outputs are known in closed form."""

from __future__ import annotations

import pytest
import torch

from sbcore.metrics.translation import sample_in_chunks
from sbcore.network.unet import UNet
from sbcore.process.base import expand_t
from sbcore.process.vp import VPDiffusion
from sbcore.sampler.base import Predictor, Trajectory
from sbcore.sampler.ddim import DDIM
from sbcore.sampler.grids import time_grid
from sbcore.sampler.guidance import Guidance, classifier_free, classifier_guided, guide, make_guidance, uniform_labels
from sbcore.testing.network import randomise

torch.set_num_threads(1)


def labelled_unet() -> UNet:
    torch.manual_seed(0)
    return randomise(UNet((1, 8, 8), channels=8, channel_mults=(1, 2), groups=4, num_classes=3)).eval()


def test_unet_labels_change_the_output_and_none_is_the_null_class() -> None:
    net = labelled_unet()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([0.2, 0.7])
    with torch.no_grad():
        a, b = net(x, t, label=torch.tensor([0, 0])), net(x, t, label=torch.tensor([1, 1]))
        assert not torch.allclose(a, b)
        torch.testing.assert_close(net(x, t), net(x, t, label=torch.tensor([3, 3])), rtol=0, atol=0)
        torch.testing.assert_close(net(x, t, label=1), b, rtol=0, atol=0)  # an int is every row's label
    with pytest.raises(ValueError, match=r"label must lie in \[0, 3\]"):
        net(x, t, label=torch.tensor([0, 4]))
    with pytest.raises(TypeError, match="but label"):
        net(x, t, y=torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="no conditioning inputs, got"):
        UNet((1, 8, 8), channels=8, channel_mults=(1, 2), groups=4)(x, t, label=torch.tensor([0, 1]))


def test_classifier_free_guidance_mixes_the_conditional_and_null_outputs() -> None:
    net = labelled_unet()
    process = VPDiffusion(steps=100)
    base = Predictor(net, process, "backward", "eps")
    x, t = torch.randn(4, 1, 8, 8), torch.full((4,), 0.6)
    label = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        cond, uncond = net(x, t, label=label), net(x, t)
        for scale in (0.0, 1.0, 3.0):
            got = classifier_free(base, label, scale)(x, t).output
            torch.testing.assert_close(got, uncond + scale * (cond - uncond), rtol=1e-5, atol=1e-6)
        # guide(): scale 1 is the conditional network alone, one evaluation of B rows
        torch.testing.assert_close(guide(base, Guidance(label, 1.0))(x, t).output, cond, rtol=0, atol=0)


def test_classifier_free_guidance_refuses_a_network_without_a_null_label() -> None:
    net = UNet((1, 8, 8), channels=8, channel_mults=(1, 2), groups=4)
    with pytest.raises(ValueError, match="null label"):
        classifier_free(Predictor(net, VPDiffusion(), "backward", "eps"), 0, 2.0)


class LinearClassifier(torch.nn.Module):
    """logits = W x + c t: grad_x log softmax_y = W_y - sum_k p_k W_k in closed form."""

    def __init__(self, classes: int, dim: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = torch.randn(classes, dim, generator=g, dtype=torch.float64)
        self.c = torch.randn(classes, generator=g, dtype=torch.float64)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + t[:, None] * self.c


def test_classifier_guidance_subtracts_the_scaled_class_gradient_from_eps() -> None:
    """Dhariwal & Nichol 2021, eq. (14): eps_hat = eps - s sqrt(1 - abar) grad log p(y | x_t)."""
    process = VPDiffusion(steps=100)
    eps_net = process.gaussian_eps(torch.tensor(0.5, dtype=torch.float64), 0.8)
    classifier = LinearClassifier(3, 2)
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), 0.4, dtype=torch.float64)
    label, scale = torch.tensor([0, 1, 2, 0, 1]), 2.5
    # the base predicts x0, so the guided one must convert to eps first
    a, b, _ = process.coefficients(t)
    x0_net = lambda x, t: (x - expand_t(b, x) * eps_net(x, t)) / expand_t(a, x)  # noqa: E731
    guided = classifier_guided(Predictor(x0_net, process, "backward", "x0"), classifier, label, scale)
    p = torch.softmax(x @ classifier.w.T + t[:, None] * classifier.c, dim=-1)
    grad = classifier.w[label] - p @ classifier.w
    want = eps_net(x, t) - scale * expand_t(b, x) * grad
    torch.testing.assert_close(guided(x, t).eps, want, rtol=1e-10, atol=1e-10)
    assert guided.predict == "eps"


def test_guided_sampling_through_ddim_counts_one_call_per_step_and_steers_to_the_class() -> None:
    """DDIM on a two-class Gaussian mixture's exact conditional eps: with guidance the samples land nearer the
    requested class mean than without, and the wrapper still counts one network call per step."""
    process = VPDiffusion(steps=100)
    means = torch.tensor([-2.0, 2.0])

    def eps(x: torch.Tensor, t: torch.Tensor, label: torch.Tensor | int | None = None) -> torch.Tensor:
        lab = torch.as_tensor(2 if label is None else label).expand(x.shape[0])
        mean = torch.where(lab == 2, torch.zeros(()), means[lab.clamp(max=1)])
        a, b, _ = process.coefficients(t)
        a, b = expand_t(a, x), expand_t(b, x)
        return b * (x - a * expand_t(mean, x)) / (a**2 * 1.0 + b**2)

    eps.num_classes = 2  # type: ignore[attr-defined]  # a class-conditional 'network' with null label 2
    sampler = DDIM(steps=20, grid="respaced")
    grid = time_grid("respaced", 20, "backward", 100)
    start = torch.randn(256, 1, generator=torch.Generator().manual_seed(0))
    plain = sampler.sample(Predictor(eps, process, "backward", "eps"), start, grid)
    cond = sampler.sample(guide(Predictor(eps, process, "backward", "eps"), Guidance(1, 1.0)), start, grid)
    strong = sampler.sample(guide(Predictor(eps, process, "backward", "eps"), Guidance(1, 3.0)), start, grid)
    assert strong.nfe == cond.nfe == plain.nfe == 20
    assert abs(float(plain.x.mean())) < 0.2 < 1.8 < float(cond.x.mean()) < float(strong.x.mean())


def test_per_input_labels_follow_their_inputs_through_chunked_sampling() -> None:
    """`target_label=random` gives each input its own class: `sample_in_chunks` must hand every part the
    labels of its own rows, and refuse a label count that is not one per input."""
    seen = []

    class Recorder:
        def sample(self, direction, x, steps=None, return_path=False, record=False, guidance=None):
            seen.append(guidance.label)
            return Trajectory(x + guidance.label[:, None].float(), None, 1)

    labels = torch.arange(10)
    out = sample_in_chunks(Recorder(), "backward", torch.zeros(10, 1), chunk=4, progress=False,
                           guidance=Guidance(labels, 2.0))
    assert [len(s) for s in seen] == [4, 4, 2]
    torch.testing.assert_close(out.x[:, 0], labels.float())
    with pytest.raises(ValueError, match=r"one per input \(10\), got 3"):
        sample_in_chunks(Recorder(), "backward", torch.zeros(10, 1), chunk=4, progress=False,
                         guidance=Guidance(torch.arange(3), 2.0))


def test_uniform_labels_draw_every_class_of_the_source_and_nothing_else() -> None:
    class Source:
        labels = torch.tensor([1, 1, 1, 3, 5, 5])  # EMNIST-style labels that do not start at 0

    drawn = uniform_labels(Source(), 3000, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=6)
    assert counts[[0, 2, 4]].sum() == 0 and all(900 < int(c) < 1100 for c in counts[[1, 3, 5]])  # uniform, not 3:1:2
    with pytest.raises(ValueError, match="no class labels"):
        uniform_labels(object(), 3, torch.Generator())
    assert torch.equal(make_guidance(drawn[:4], {"scale": 2}, None).label, drawn[:4])
