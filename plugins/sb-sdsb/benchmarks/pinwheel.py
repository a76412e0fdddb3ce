"""Pinwheel -> checkerboard:8 with DSB, S-DSB, TR-DSB and FR-DSB on the same step budget, and FR-DSB and TR-DSB
initialised from a flow-matching run (Tang et al. 2024, Sec. 5.1 and 4.4; TR-DSB reads the FM velocity through
``method.network_output: velocity``).

    python plugins/sb-sdsb/benchmarks/pinwheel.py --seeds 0 1 2 --out runs/sdsb-bench [--jobs 2]

Every run is `sbcore run examples/sdsb/<config>.yaml seed=S name=... out=OUT` (printed before it starts;
runs whose metrics already hold their last epoch are not repeated). After each epoch a run logs the
exact W2 (POT emd2, 2000 samples) of x0_to_x1's samples to the checkerboard (forward/w2) and of
x1_to_x0's samples to the pinwheel (backward/w2). The script prints per-epoch tables (mean +- std over
seeds), the sample-vs-sample W2 floor of each data set, and writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from sbcore.data.toy2d import Toy2D
from sbcore.metrics.vector import wasserstein2

VARIANTS = ("dsb", "sdsb", "trdsb", "frdsb")
#: variants started from the flow-matching run, and how they read its velocity.
INIT_VARIANTS = {"frdsb": (), "trdsb": ("method.network_output=velocity",)}
CONFIGS = Path("examples/sdsb")
FLOOR_DRAWS = 5


def command(config: str, seed: int, name: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sbcore", "run", str(CONFIGS / f"{config}.yaml"), f"seed={seed}", f"name={name}",
            f"out={out}", "train.progress=false", *extra]


def evals(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "eval/forward/w2" in r]


def launch(cmd: list[str], run: Path, done: int) -> None:
    if len({r.get("eval/epoch") for r in evals(run)}) >= done:
        return
    print("$", shlex.join(cmd[1:]).replace("-m sbcore", "sbcore"), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def floor(name: str, n: int = 2000) -> tuple[float, float]:
    """W2 between two independent draws of n points of the same set: what a perfect model would score."""
    source = Toy2D(name)
    values = [wasserstein2(source.sample(n, torch.Generator().manual_seed(2 * k)),
                           source.sample(n, torch.Generator().manual_seed(2 * k + 1))) for k in range(FLOOR_DRAWS)]
    return statistics.mean(values), statistics.stdev(values)


def by_epoch(runs: list[Path], key: str) -> dict[int, list[float]]:
    table: dict[int, list[float]] = {}
    for run in runs:
        for row in evals(run):
            table.setdefault(int(row["eval/epoch"]), []).append(float(row[key]))
    return table


def fmt(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/sdsb-bench"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=list(VARIANTS),
                        help="variants to run (all four are tabulated)")
    parser.add_argument("--no-fm", action="store_true", help="skip the flow-matching initialisation runs")
    args = parser.parse_args()
    out, epochs = args.out, args.epochs
    extra = [f"method.epochs={epochs}"]

    jobs = [(command(f"pinwheel_checkerboard_{v}", s, f"{v}-s{s}", out, *extra), out / f"{v}-s{s}", epochs)
            for s in args.seeds for v in args.variants]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: launch(*job), jobs))
        if not args.no_fm:
            fm = [(command("pinwheel_checkerboard_fm", s, f"fm-s{s}", out), out / f"fm-s{s}", 1) for s in args.seeds]
            list(pool.map(lambda job: launch(*job), fm))
            init = [(command(f"pinwheel_checkerboard_{v}", s, f"{v}-fm-s{s}", out, *extra, *converted,
                             f"train.init_from={out / f'fm-s{s}'}", "train.init_map={x0_to_x1: forward_drift}"),
                     out / f"{v}-fm-s{s}", epochs - 1)
                    for s in args.seeds for v, converted in INIT_VARIANTS.items()]
            list(pool.map(lambda job: launch(*job), init))

    results: dict[str, dict] = {"floor": {"checkerboard:8": floor("checkerboard:8"), "pinwheel": floor("pinwheel")}}
    names = [*VARIANTS, *([] if args.no_fm else [f"{v}-fm" for v in INIT_VARIANTS])]
    for name in names:
        runs = [out / f"{name}-s{s}" for s in args.seeds]
        results[name] = {side: by_epoch(runs, f"eval/{side}/w2") for side in ("forward", "backward")}
    (out / "results.json").write_text(json.dumps(results, indent=1))

    fl = results["floor"]
    print(f"\nW2 floor (two independent 2000-point draws, {FLOOR_DRAWS} pairs): checkerboard:8 "
          f"{fl['checkerboard:8'][0]:.3f} ± {fl['checkerboard:8'][1]:.3f}, pinwheel {fl['pinwheel'][0]:.3f} ± "
          f"{fl['pinwheel'][1]:.3f}; seeds {args.seeds}")
    for side, what in (("forward", "x0_to_x1 samples vs checkerboard:8"), ("backward", "x1_to_x0 samples vs pinwheel")):
        print(f"\nW2 after each epoch, {what} (even epochs train x0_to_x1, odd x1_to_x0)\n")
        print("| epoch | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for epoch in range(epochs):
            print(f"| {epoch} | " + " | ".join(fmt(results[n][side].get(epoch, [])) for n in names) + " |")


if __name__ == "__main__":
    main()
