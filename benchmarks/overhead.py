"""Framework overhead: sbcore's `bm` training loop against a bare PyTorch loop doing the same math.

Both train a forward and a backward network by bridge matching (`sbcore.train.bridge_matching`'s loss on
the Brownian bridge, sigma = 1) on independent pairs, with fused AdamW, per-network gradient clipping at
1.0 and an EMA (0.999): what a hand-written loop does, reading the loss on the host every `LOG_EVERY`
steps. sbcore's figure is the loop time it reports itself (`train_seconds`; setup, the final checkpoint
and the final evaluation excluded), in two settings:

- quiet: no logging until the last step, no progress bar, no evaluation inside the loop;
- logged: metrics every `LOG_EVERY` steps, the progress bar, and one evaluation half-way (`EVAL_SAMPLES`
  samples and its pictures), which the bare loop does not do. Its ratio is reported twice: with the loop
  time as it is, and without the evaluation's own seconds (`eval_seconds` of the run's summary), which is
  what logging costs; the evaluation's seconds are printed beside it.

Variants: `mlp` (sbcore's MLP, d=50, batch 256) and `unet` (sbcore's UNet on 1x16x16 arrays, batch 16).
Each repeat runs bare, quiet and logged back to back, in reverse order every other repeat so that a
machine's drift cancels; the medians of the repeats and the spread of the per-repeat ratios are reported
(on a shared machine single timings are noisy).

    python benchmarks/overhead.py [--variant mlp|unet|both] [--steps 300] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbcore.config import structure_config
from sbcore.launch.local import run_local
from sbcore.network.mlp import MLP
from sbcore.network.unet import UNet
from sbcore.plugins import create_plugins
from sbcore.process.brownian import BrownianBridge
from sbcore.train.bridge_matching import bridge_matching_loss

LOG_EVERY, EVAL_SAMPLES = 50, 256
#: variant -> (data shape, batch, network config); the bare loop builds the same networks.
VARIANTS: dict[str, tuple[tuple[int, ...], int, dict[str, Any]]] = {
    "mlp": ((50,), 256, {"kind": "mlp", "hidden": 256, "layers": 3}),
    "unet": ((1, 16, 16), 16, {"kind": "unet", "channels": 16, "channel_mults": [1, 2]}),
}
ARRAY_ROWS = 512


def build_network(variant: str) -> torch.nn.Module:
    shape, _, spec = VARIANTS[variant]
    params = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "mlp":
        return MLP(shape, **params)
    return UNet(shape, channels=params["channels"], channel_mults=tuple(params["channel_mults"]))


def draw(variant: str, arrays: dict[str, torch.Tensor] | None, n: int, gen: torch.Generator) -> tuple:
    shape = VARIANTS[variant][0]
    if arrays is None:  # N(-0.1, I) and N(0.1, I)
        return torch.randn(n, *shape, generator=gen) - 0.1, torch.randn(n, *shape, generator=gen) + 0.1
    rows = [torch.randint(ARRAY_ROWS, (n,), generator=gen) for _ in range(2)]
    return arrays["x0"][rows[0]], arrays["x1"][rows[1]]


def bare_loop(variant: str, steps: int, arrays: dict[str, torch.Tensor] | None, seed: int = 0) -> float:
    batch = VARIANTS[variant][1]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    nets = {d: build_network(variant) for d in ("forward", "backward")}
    groups = [list(net.parameters()) for net in nets.values()]
    params = [p for group in groups for p in group]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0, fused=True)
    ema = [p.detach().clone() for p in params]
    live = [p.detach() for p in params]
    process = BrownianBridge(1.0)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x0, x1 = draw(variant, arrays, batch, gen)
        t = 1e-3 + (1 - 2e-3) * torch.rand(batch)
        loss = sum(bridge_matching_loss(net, process, x0, x1, t, d) for d, net in nets.items())
        loss.backward()
        for group in groups:
            torch.nn.utils.clip_grad_norm_(group, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch._foreach_lerp_(ema, live, 1 - 0.999)
        if step % LOG_EVERY == 0:
            float(loss.detach())
    return time.perf_counter() - start


def write_arrays(folder: Path) -> dict[str, torch.Tensor]:
    """Two sets of random 'images' in [-1, 1] for the UNet variant, in a file the `arrays` source reads."""
    shape = VARIANTS["unet"][0]
    rng = np.random.default_rng(0)
    arrays = {side: rng.uniform(-1, 1, size=(ARRAY_ROWS, *shape)).astype(np.float32) for side in ("x0", "x1")}
    for side, values in arrays.items():
        np.save(folder / f"{side}.npy", values)
    return {side: torch.from_numpy(values) for side, values in arrays.items()}


def sbcore_loop(variant: str, steps: int, logged: bool, plugins, data_dir: Path, out: Path) -> float:
    shape, batch, network = VARIANTS[variant]
    if variant == "mlp":
        data = {"x0": {"source": "gaussian", "dim": shape[0], "mean": -0.1},
                "x1": {"source": "gaussian", "dim": shape[0], "mean": 0.1}}
    else:
        data = {side: {"source": "arrays", "path": str(data_dir / f"{side}.npy")} for side in ("x0", "x1")}
    train = {"steps": steps, "batch_size": batch, "lr": 1e-3, "eval_samples": EVAL_SAMPLES,
             "threads": torch.get_num_threads(),
             "checkpoint_every": 0, "log_every": LOG_EVERY if logged else steps, "progress": logged,
             "eval_every": steps // 2 if logged else 0}
    raw = {"plugin": "bm", "name": f"{variant}-{'logged' if logged else 'quiet'}", "out": str(out),
           "seed": 0, "data": data, "network": network, "train": train,
           "sampler": {"kind": "euler_maruyama", "steps": 2}, "log": {"console": False}}
    summary = run_local(structure_config(raw, plugins.registry), None, plugins)
    return summary["train_seconds"], summary["eval_seconds"]


def measure(variant: str, steps: int, repeats: int, plugins) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        arrays = write_arrays(out) if variant == "unet" else None
        bare_loop(variant, 10, arrays)  # warm-up, so no setting pays for first-call initialisation
        sbcore_loop(variant, 10, True, plugins, out, out / "warm-up")
        times: dict[str, list[float]] = {"bare": [], "quiet": [], "logged": [], "logging": [], "eval": []}
        for repeat in range(repeats):
            settings = ["bare", "quiet", "logged"]
            for setting in settings if repeat % 2 == 0 else settings[::-1]:  # drift on a shared machine cancels
                if setting == "bare":
                    times["bare"].append(bare_loop(variant, steps, arrays))
                    continue
                loop, evaluation = sbcore_loop(variant, steps, setting == "logged", plugins, out,
                                               out / f"{setting}{repeat}")
                times[setting].append(loop)
                if setting == "logged":
                    times["logging"].append(loop - evaluation)
                    times["eval"].append(evaluation)
    shape, batch, _ = VARIANTS[variant]
    print(f"\n{variant}: shape {shape}, batch {batch}, {steps} steps, {repeats} alternating repeats, "
          f"threads {torch.get_num_threads()}")
    bare = statistics.median(times["bare"])
    for name, label in (("bare", "bare PyTorch loop"), ("quiet", "sbcore, logging/eval off"),
                        ("logged", "sbcore, logging/eval on"), ("logging", "sbcore, on, eval excluded")):
        ms = [1000 * s / steps for s in times[name]]
        line = f"  {label:26s} median {statistics.median(ms):8.3f} ms/step (min {min(ms):.3f}, max {max(ms):.3f})"
        if name != "bare":
            paired = [f / b for f, b in zip(times[name], times["bare"], strict=True)]
            line += (f"  ratio {statistics.median(times[name]) / bare:.3f} "
                     f"(per repeat: median {statistics.median(paired):.3f}, {min(paired):.3f}-{max(paired):.3f})")
        print(line)
    print(f"  one evaluation ({EVAL_SAMPLES} samples, pictures): median {statistics.median(times['eval']):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=["mlp", "unet", "both"], default="both")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plugins = create_plugins()
    for variant in ["mlp", "unet"] if args.variant == "both" else [args.variant]:
        measure(variant, args.steps, args.repeats, plugins)


if __name__ == "__main__":
    main()
