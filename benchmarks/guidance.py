"""Guidance, measured: classifier-free guidance of a class-conditional MNIST model, and classifier-guided
DDIB class-to-class translation, scored by the digits CNN (`sbcore.metrics.digits`).

Needs a class-conditional DDIB run (`examples/ddib/mnist_classes_cpu.yaml`: UNet with num_classes 10,
label dropout 0.1). Three parts:

* ``cfg``: for each digit k, n noise samples decoded with label k and classifier-free scale s
  (0 = unconditional, 1 = conditional, > 1 guided); agreement = fraction the CNN puts in class k.
* ``classifier``: trains a noisy classifier (`adm_classifier`, adaptive pool) on x_t of MNIST train
  digits at t drawn from the run's own process times, saved as a weights file; its accuracy on x_t of
  test digits at a few t.
* ``translate``: MNIST test digits of class a encoded by the run (label a or null), decoded towards class
  b = (a + 5) mod 10 (label b or null) with and without the classifier's guidance; accuracy = fraction the
  CNN puts in class b.

    python benchmarks/guidance.py run=runs/ddib-mnist-classes-cpu [n=50] [steps=50] [classifier_steps=800]
        [classifier_batch=32] [classifier_t_max=0.5] [parts=cfg,classifier,translate] [out=benchmarks/results/guidance]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sbcore.metrics.digits import cnn_outputs, load_domain
from sbcore.metrics.translation import sample_in_chunks
from sbcore.network.adm import ADMClassifier
from sbcore.network.weights import WeightsInfo, load_network_file, write_weights
from sbcore.plugins import get_plugins
from sbcore.sample import load_trainer, run_config
from sbcore.sampler.guidance import Guidance

CFG_SCALES = (0.0, 1.0, 2.0, 4.0)
CLASSIFIER_SCALES = (0.0, 3.0, 10.0)


def agreement(images: torch.Tensor, label: int) -> float:
    return float((cnn_outputs(images)[1].argmax(-1) == label).double().mean())


def cfg_part(trainer, n: int, steps: int, seed: int) -> dict[str, float]:
    results = {}
    for scale in CFG_SCALES:
        hits = []
        for k in range(10):
            torch.manual_seed(seed + k)
            noise = torch.randn(n, *trainer.shape)
            x = sample_in_chunks(trainer, "backward", noise, steps=steps, progress=False,
                                 guidance=Guidance(k, scale)).x
            hits.append(agreement(x, k))
        results[f"{scale:g}"] = sum(hits) / len(hits)
        print(f"cfg scale {scale:g}: class agreement {results[f'{scale:g}']:.3f} (10 classes x {n})", flush=True)
    return results


def train_classifier(run: Path, steps: int, batch: int, t_max: float, path: Path, seed: int) -> dict[str, float]:
    """A noisy classifier p(y | x_t, t) on the run's process: x_t = a(t) x0 + b(t) eps, t on its training grid
    up to t_max (beyond abar(0.5) ~ 0.08 on the linear schedule little class information is left to learn in a
    CPU-sized budget; the gradient there is small either way)."""
    torch.manual_seed(seed)
    images, labels = load_domain("digits", "train")
    process = run_config(run).process.build(get_plugins().registry)
    size = process.grid_size
    net = ADMClassifier(tuple(images.shape[1:]), num_channels=32, num_res_blocks=1, channel_mult=(1, 2),
                        attention_resolutions=(), pool="adaptive", num_classes=10)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(len(images), (batch,))
        t = torch.randint(int(t_max * (size - 1)) + 1, (batch,)).float() / (size - 1)
        a, b, _ = process.coefficients(t)
        x0 = images[idx]
        xt = a[:, None, None, None] * x0 + b[:, None, None, None] * torch.randn_like(x0)
        loss = F.cross_entropy(net(xt, t), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"classifier step {step}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    net.eval()
    test, test_labels = load_domain("digits", "test")
    accuracy = {}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tv in (0.0, 0.25, 0.5, 0.75):
            t = torch.full((1000,), tv)
            a, b, _ = process.coefficients(t)
            xt = a[:, None, None, None] * test[:1000] + b[:, None, None, None] * torch.randn(
                test[:1000].shape, generator=g)
            accuracy[f"t={tv:g}"] = float((net(xt, t).argmax(-1) == test_labels[:1000]).double().mean())
    print(f"classifier accuracy on noisy test digits: {accuracy} ({time.perf_counter() - start:.0f} s)", flush=True)
    write_weights(path, net.state_dict(), WeightsInfo("classifier", "adm_classifier", net.hparams, "benchmark"))
    return accuracy


def translate_part(trainer, classifier, n: int, steps: int, seed: int) -> dict[str, float]:
    test, labels = load_domain("digits", "test")
    results: dict[str, float] = {}
    for conditional in (False, True):
        latents = {}
        for a in range(10):  # the encoding does not depend on the decoding's guidance: once per class
            torch.manual_seed(seed + a)
            encode = {"guidance": Guidance(a)} if conditional else {}
            latents[a] = sample_in_chunks(trainer, "forward", test[labels == a][:n], steps=steps, progress=False,
                                          **encode).x
        for scale in CLASSIFIER_SCALES:
            hits = []
            for a in range(10):
                b = (a + 5) % 10
                if scale > 0:
                    decode = Guidance(b, scale, classifier, conditional=conditional)
                else:  # unguided: the label b, or the null label (the unconditional model)
                    decode = Guidance(b if conditional else trainer.num_classes)
                y = sample_in_chunks(trainer, "backward", latents[a], steps=steps, progress=False, guidance=decode).x
                hits.append(agreement(y, b))
            key = f"{'label a -> label b' if conditional else 'null -> null'}, classifier scale {scale:g}"
            results[key] = sum(hits) / len(hits)
            print(f"translate {key}: target-class accuracy {results[key]:.3f} (10 pairs x {n})", flush=True)
    return results


def main(argv: list[str]) -> int:
    opts = dict(item.split("=", 1) for item in argv)
    run = Path(opts["run"])
    n, steps = int(opts.get("n", 50)), int(opts.get("steps", 50))
    out = Path(opts.get("out", "benchmarks/results/guidance"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    parts = opts.get("parts", "cfg,classifier,translate").split(",")
    trainer = load_trainer(run, "cpu")[0] if {"cfg", "translate"} & set(parts) else None
    record: dict[str, object] = {"run": str(run), "n_per_class": n, "steps": steps,
                                 "cpu_threads": 1, "note": "wall times under load from other jobs"}
    start = time.perf_counter()
    if "cfg" in parts:
        record["cfg_class_agreement"] = cfg_part(trainer, n, steps, seed=0)
    weights = out / "mnist_noisy_classifier.safetensors"
    if "classifier" in parts:
        record["classifier_accuracy"] = train_classifier(run, int(opts.get("classifier_steps", 800)),
                                                         int(opts.get("classifier_batch", 32)),
                                                         float(opts.get("classifier_t_max", 0.5)), weights, 0)
    if "translate" in parts:
        classifier, _ = load_network_file(weights, get_plugins().registry)
        record["translation_target_accuracy"] = translate_part(trainer, classifier, n, steps, seed=0)
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    (out / f"guidance_{'_'.join(parts)}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
