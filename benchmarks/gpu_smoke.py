"""A few hundred bf16 training steps of each plugin's paper-size image config on one GPU: images/s, peak memory, errors.

Each config trains `--steps` steps (alternating methods switch stage halfway, so the teacher's simulation
and its cache run too), under bf16 autocast (`train.precision=bf16`), then evaluates on a small sample.
The table has one row per config: training images/s (steps x batch / training seconds, the first
`--warmup` steps excluded), peak GPU memory, wall time, and the error if the config failed; the others go on.
With the defaults the whole smoke takes well under 8 minutes on one H100-class GPU. Where there is no GPU it
prints one line and exits 0::

    python benchmarks/gpu_smoke.py --steps 300 --out runs/gpu_smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

#: config file -> overrides making a short run that still crosses one stage boundary.
CONFIGS: dict[str, dict[str, Any]] = {
    "examples/dsbm/mnist_emnist.yaml": {"method": {"first_inner_iters": "HALF", "inner_iters": "HALF",
                                                   "outer_iters": 2, "cache_size": 1024}},
    "examples/sdsb/mnist_emnist.yaml": {"method": {"steps_per_epoch": "HALF", "epochs": 2, "cache_size": 12800,
                                                   "cache_chunk": 12800}},
    "examples/dbfs/mnist_emnist.yaml": {"method": {"inner_iters": "HALF", "outer_iters": 2, "cache_size": 1024},
                                        "eval": {"metrics": []}},
    "examples/ddib/mnist.yaml": {},
    "examples/i2sb/mnist-sr4x-pool.yaml": {},
}


def _fill(tree: Any, half: int) -> Any:
    if isinstance(tree, dict):
        return {k: _fill(v, half) for k, v in tree.items()}
    return half if tree == "HALF" else tree


def smoke(path: str, steps: int, warmup: int, out: Path) -> dict[str, Any]:
    """Train one config for `steps` bf16 steps on cuda; its row of the table."""
    from sbcore.config import structure_config
    from sbcore.config_text import merge, read_yaml_file
    from sbcore.plugins import get_plugins
    from sbcore.run import prepare_run

    plugins = get_plugins()
    raw = merge(read_yaml_file(path), _fill(CONFIGS[path], steps // 2))
    raw = merge(raw, {"out": str(out), "name": Path(path).stem, "launcher": {"kind": "local"},
                      "train": {"steps": steps, "precision": "bf16", "device": "cuda", "eval_samples": 64,
                                "eval_every": 0, "checkpoint_every": 0, "log_every": max(1, steps // 4),
                                "progress": False}})
    row: dict[str, Any] = {"config": path, "steps": steps}
    started = time.perf_counter()
    try:
        config = structure_config(raw, plugins.registry)
        row["batch"] = config.train.batch_size
        torch.cuda.reset_peak_memory_stats()
        run, trainer, lock = prepare_run(config, path, plugins)
        marks: dict[int, float] = {}

        original = trainer.train_step

        def timed_step() -> None:  # images/s from the warm steps only (compilation, allocation, first cache)
            original()
            if trainer.step in (warmup, steps - 1):
                torch.cuda.synchronize()
                marks[trainer.step] = time.perf_counter()

        trainer.train_step = timed_step
        with lock:
            trainer.fit()
        if len(marks) == 2:
            row["images_per_s"] = (steps - 1 - warmup) * config.train.batch_size / (marks[steps - 1] - marks[warmup])
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    except Exception as exc:  # noqa: BLE001 - one failing config is a row of the table, not the end of the smoke
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        traceback.print_exc()
    row["wall_s"] = time.perf_counter() - started
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="steps excluded from images/s")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, of the known configs")
    parser.add_argument("--out", type=Path, default=None, help="folder of the runs and gpu_smoke.json "
                        "(default: a temporary folder, removed)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_smoke: no CUDA GPU available (torch.cuda.is_available() is False); nothing to run")
        return 0
    if args.steps <= args.warmup + 1:
        parser.error(f"--steps must exceed --warmup + 1 ({args.warmup + 1}), got {args.steps}")
    configs = args.configs.split(",")
    if unknown := [c for c in configs if c not in CONFIGS]:
        parser.error(f"unknown configs {unknown}; known: {list(CONFIGS)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = [smoke(c, args.steps, args.warmup, out) for c in configs]
        if args.out is not None:
            (out / "gpu_smoke.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.steps} steps, bf16 autocast")
    print("| config | batch | images/s | peak memory (GiB) | wall (s) | error |\n|---|---|---|---|---|---|")
    for r in rows:
        ips = f"{r['images_per_s']:.0f}" if "images_per_s" in r else "-"
        peak = f"{r['peak_gib']:.2f}" if "peak_gib" in r else "-"
        print(f"| {r['config']} | {r.get('batch', '-')} | {ips} | {peak} | {r['wall_s']:.0f} | {r.get('error', '')} |")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
