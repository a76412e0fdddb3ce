"""Training steps per second of the core UNet on the CPU, per size, thread count and execution variant.

One step is what `sbcore.train.trainer` does per batch: forward, mean-squared loss, backward, fused AdamW,
on a batch of MNIST-sized images (1 x 28 x 28). The variants:

* ``fp32``       the plain module (NCHW, float32): the baseline;
* ``cl``         channels-last memory format (module and inputs);
* ``bf16``       bf16 autocast around forward and loss (the CPU's AVX512-BF16 / AMX kernels, where present);
* ``compile``    ``torch.compile`` of the module (inductor's C++ backend; compile time is reported apart);
* ``cl+compile`` channels-last and compile;
* ``cl+bf16``, ``bf16+compile``: bf16 autocast with either.

The machine may be shared, so the variants are interleaved: each round times every variant for `steps`
steps in turn, and the table reports each variant's median over the rounds, plus its ratio to the baseline
timed in the same rounds. Run it under ``nice`` with nothing else of yours running::

    python benchmarks/cpu_speed.py --threads 1,2 --rounds 5 --steps 10 --out benchmarks/cpu_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sbcore.network.unet import UNet

#: name -> UNet keyword arguments (the sizes the CPU recipes and the original examples use).
SIZES: dict[str, dict] = {
    "unet-16": {"channels": 16, "channel_mults": (1, 2, 2), "groups": 4},
    "unet-16x2": {"channels": 16, "channel_mults": (1, 2), "groups": 4},
    "unet-32": {"channels": 32, "channel_mults": (1, 2, 2), "groups": 8},
}
VARIANTS = ("fp32", "cl", "bf16", "compile", "cl+compile", "cl+bf16", "bf16+compile")


def make_step(size: str, variant: str, batch: int, seed: int = 0) -> tuple[Callable[[], None], float]:
    """A closure running one training step of `variant`, and the seconds its first call (compilation) took."""
    torch.manual_seed(seed)
    net = UNet((1, 28, 28), **SIZES[size])
    channels_last = variant.startswith("cl")
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if "compile" in variant else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, 1, 28, 28)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    target, t = torch.randn_like(x), torch.rand(batch)
    dtype = torch.bfloat16 if "bf16" in variant else None

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = (model(x, t).float() - target).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    start = time.perf_counter()
    step()
    return step, time.perf_counter() - start


def measure(sizes: list[str], variants: list[str], threads: list[int], batch: int, rounds: int,
            steps: int) -> list[dict]:
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for size in sizes:
            steps_of, first = {}, {}
            for variant in variants:
                try:
                    steps_of[variant], first[variant] = make_step(size, variant, batch)
                except Exception as exc:  # noqa: BLE001 - a variant this machine cannot run is reported, not fatal
                    print(f"{size} {variant} threads={n_threads}: unavailable ({type(exc).__name__}: {exc})")
            times: dict[str, list[float]] = {v: [] for v in steps_of}
            for _ in range(rounds):
                for variant, step in steps_of.items():
                    step()  # warm: one untimed step per round
                    start = time.perf_counter()
                    for _ in range(steps):
                        step()
                    times[variant].append((time.perf_counter() - start) / steps)
            base = statistics.median(times["fp32"]) if "fp32" in times else None
            for variant, values in times.items():
                median = statistics.median(values)
                row = {"size": size, "params": sum(p.numel() for p in UNet((1, 28, 28), **SIZES[size]).parameters()),
                       "threads": n_threads, "batch": batch, "variant": variant, "s_per_step": median,
                       "steps_per_s": 1 / median, "speedup": base / median if base else None,
                       "first_call_s": first[variant], "rounds": rounds, "steps": steps}
                rows.append(row)
                print(f"{size:10s} threads={n_threads} {variant:11s} {1 / median:6.2f} steps/s "
                      f"({median * 1000:7.1f} ms/step, x{row['speedup'] or 0:.2f} of fp32, first call "
                      f"{first[variant]:.1f} s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {list(SIZES)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    sizes, variants = args.sizes.split(","), args.variants.split(",")
    for name, known, what in ((sizes, SIZES, "size"), (variants, VARIANTS, "variant")):
        if unknown := [n for n in name if n not in known]:
            parser.error(f"unknown {what} {unknown}; known: {list(known)}")
    rows = measure(sizes, variants, [int(t) for t in args.threads.split(",")], args.batch, args.rounds, args.steps)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
