"""Resolution sweep of a finished 1-D run: spectral Fréchet distances of generated vs target functions.

    python -m sb_dbfs.sweep runs/gp1d --sizes 32 64 128 256 --n 2000 [--sampler exponential] [--steps 30]

For each grid size N, sources and two independent target samples are drawn natively on the N-point grid,
the run's EMA network is integrated there, and the table reports FD_K (first K resolution-normalised DCT
coefficients) of generated vs target, the target-vs-target floor and the source-vs-target distance.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from sb_dbfs.resolution import draw_at, spectral_fd
from sbcore.process.base import ENDS
from sbcore.sample import load_trainer


def sweep(run_dir: Path, sizes: list[int], n: int = 2000, direction: str = "forward", modes: int = 12,
          sampler: str | None = None, steps: int | None = None, seed: int = 0) -> Iterator[dict[str, float]]:
    """One row per grid size, as soon as it is measured."""
    trainer, _ = load_trainer(run_dir)
    if sampler is not None:
        trainer.sampler = trainer.run.registry.get("sampler", sampler)(steps=steps or trainer.sampler.steps)
    start_side, end_side = ENDS[direction]
    for size in sizes:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed + 1)
        source = draw_at(trainer.sources[start_side], n, size, generator)
        target = draw_at(trainer.sources[end_side], n, size, generator)
        floor = draw_at(trainer.sources[end_side], n, size, generator)
        with torch.no_grad():
            generated = trainer.sample(direction, source, steps=steps).x.cpu()
        yield {
            "N": size,
            "fd_generated": spectral_fd(generated, target, modes),
            "fd_floor": spectral_fd(floor, target, modes),
            "fd_source": spectral_fd(source, target, modes),
            "mean_rmse": float((generated.mean(0) - target.mean(0)).square().mean().sqrt()),
            "std_ratio": float((generated.std(0) / target.std(0)).mean()),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sb_dbfs.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--direction", default="forward", choices=sorted(ENDS))
    parser.add_argument("--modes", type=int, default=12)
    parser.add_argument("--sampler", default=None, help="a registered sampler kind replacing the run's")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| N | FD gen-tgt | x FD@first | floor | src-tgt | gen/src | mean RMSE | std ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows: list[dict[str, float]] = []
    for r in sweep(args.run, args.sizes, args.n, args.direction, args.modes, args.sampler, args.steps, args.seed):
        rows.append(r)
        base = rows[0]["fd_generated"]
        print(f"| {r['N']} | {r['fd_generated']:.4f} | {r['fd_generated'] / base:.2f} | {r['fd_floor']:.4f} | "
              f"{r['fd_source']:.3f} | {r['fd_generated'] / r['fd_source']:.3f} | {r['mean_rmse']:.3f} | "
              f"{r['std_ratio']:.3f} |", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
