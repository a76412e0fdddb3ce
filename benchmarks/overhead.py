"""Framework overhead: sbcore's `bm` training loop against a bare PyTorch loop doing the same math.

Both train forward and backward MLPs (sbcore's MLP module, d=50, batch 256) by bridge matching on
independent Gaussian pairs with AdamW, gradient clipping and EMA. sbcore's figure is the loop time
it reports itself (`train_seconds`: steps, logging hooks, progress bar; setup and the final
evaluation excluded). Runs alternate and the median of several repeats is reported.

    python benchmarks/overhead.py [--steps 300] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from sbcore.config import structure_config
from sbcore.launch.local import run_local
from sbcore.network.mlp import MLP
from sbcore.plugins import create_plugins
from sbcore.process.brownian import BrownianBridge

DIM, BATCH, HIDDEN, LAYERS = 50, 256, 256, 3


def bare_loop(steps: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    nets = {d: MLP((DIM,), hidden=HIDDEN, layers=LAYERS) for d in ("forward", "backward")}
    params = [p for net in nets.values() for p in net.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    process = BrownianBridge(1.0)
    start = time.perf_counter()
    for _ in range(steps):
        x0 = torch.randn(BATCH, DIM, generator=gen) - 0.1
        x1 = torch.randn(BATCH, DIM, generator=gen) + 0.1
        t = 1e-3 + (1 - 2e-3) * torch.rand(BATCH)
        loss = 0.0
        for d, net in nets.items():
            x_t = process.sample_bridge(x0, x1, t)
            target = process.drift_target(x0, x1, x_t, t, d)
            loss = loss + (net(x_t, t) - target).pow(2).sum(1).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.999)
        float(loss.detach())
    return time.perf_counter() - start


def sbcore_loop(steps: int, plugins, out: str) -> float:
    raw = {
        "plugin": "bm", "name": "overhead", "out": out, "seed": 0,
        "data": {"x0": {"source": "gaussian", "dim": DIM, "mean": -0.1},
                 "x1": {"source": "gaussian", "dim": DIM, "mean": 0.1}},
        "network": {"kind": "mlp", "hidden": HIDDEN, "layers": LAYERS},
        "train": {"steps": steps, "batch_size": BATCH, "log_every": 50, "eval_samples": 100, "progress": True},
        "sampler": {"kind": "euler_maruyama", "steps": 2},
        "log": {"console": False},
    }
    summary = run_local(structure_config(raw, plugins.registry), None, plugins)
    return summary["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plugins = create_plugins()
    bare, framework = [], []
    with tempfile.TemporaryDirectory() as out:
        bare_loop(20)  # warm-up of both, so neither pays for first-call initialisation
        sbcore_loop(20, plugins, out + "/warm-up")
        for _ in range(args.repeats):
            bare.append(bare_loop(args.steps))
            framework.append(sbcore_loop(args.steps, plugins, out))
    b, f = statistics.median(bare), statistics.median(framework)
    print(f"steps={args.steps} batch={BATCH} d={DIM} threads={args.threads} repeats={args.repeats}")
    print(f"bare PyTorch loop : {1000 * b / args.steps:7.3f} ms/step")
    print(f"sbcore bm loop    : {1000 * f / args.steps:7.3f} ms/step")
    print(f"ratio sbcore/bare : {f / b:.3f}")


if __name__ == "__main__":
    main()
