"""PSNR / SSIM / feature distance (and FID against reference statistics) of I2SB restorations, per NFE.

    sbcore stats mnist split=train out=runs/mnist32-train-digits.npz        # once: the reference
    python plugins/sb-i2sb/benchmarks/nfe_sweep.py --run runs/i2sb-mnist-sr4x-pool \
        --baseline runs/i2sb-mnist-sr4x-pool-regression --nfe 1 2 5 10 50 --n 512 \
        --reference runs/mnist32-train-digits.npz

Every number comes from the core's evaluation path (`sbcore.metrics.evaluate.evaluate_trainer`, what
``sbcore eval run=R split=test`` computes): the clean images of the run's test split (``eval.data``),
degraded by the run's operator under a fixed seed, so every row sees the same pairs; restored by the
run's EMA weights at each NFE. The degraded input and the regression baseline (a run with
``method.objective: regression``, NFE 1) are scored on the same pairs. PSNR and SSIM against the clean
partner (data range 2 on [-1, 1], the same values as range 1 on [0, 1]); feature distance: Fréchet
distance of the digits CNN's features (sbcore.metrics.digits, not Inception FID) to the clean test
images; with ``--reference``, the same distance to the statistics of a whole split (``fid``) beside
the clean test images' own distance to them (``fid_floor``). Theory (spec i2sb_ddib.md §1.12): NFE 1 is
about the posterior mean, so its PSNR is highest; posterior samples at large NFE lose about
10 log10 2 = 3 dB while their features get closer to the data. ``--ot-ode`` adds, for every NFE, the same
run sampled with OT-ODE chosen at sampling time (the i2sb sampler's ``ot_ode: true``: the posterior mean
only), whatever the run trained with.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from sbcore.metrics.evaluate import build_metrics, evaluate_samples, evaluate_trainer
from sbcore.metrics.translation import Translation, metric_generator, translate
from sbcore.sample import load_trainer
from sbcore.sampler.base import Trajectory

COLUMNS = ("psnr", "ssim", "feature_distance", "fid", "fid_floor")


def metric_specs(reference: Path | None) -> list[Any]:
    specs: list[Any] = ["psnr", "ssim", "feature_distance"]
    return specs + ([{"kind": "fid", "extractor": "digits", "reference": str(reference)}] if reference else [])


def row(record: dict[str, Any]) -> dict[str, Any]:
    """The backward direction's scores of an `evaluate_trainer` record."""
    values = {k.split("/", 1)[1]: v for k, v in record["metrics"].items() if k.startswith("backward/")}
    return {**values, "n": record["n"]["backward"], "split": record["split"], "nfe": record["nfe"]["backward"]}


def degraded_row(trainer: Any, n: int, seed: int, specs: list[Any]) -> dict[str, Any]:
    """The degraded inputs themselves scored against their clean partners: the pairs of every row (one
    NFE-1 translation draws them exactly as `evaluate_trainer` does)."""
    drawn: dict[str, Any] = {}
    tr = translate(trainer, n, seed, steps=1, progress=False, drawn=drawn)["backward"]
    as_output = Translation(tr.direction, tr.inputs, Trajectory(tr.inputs, None, 0), tr.data, tr.partner)
    values, _ = evaluate_samples(trainer.run, {"backward": as_output}, build_metrics(specs, trainer.run.registry),
                                 metric_generator(seed))
    return {**{k.split("/", 1)[1]: v for k, v in values.items()}, "n": len(tr.inputs), "split": drawn["split"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="an i2sb run folder")
    parser.add_argument("--baseline", type=Path, help="an i2sb run with method.objective: regression")
    parser.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 5, 10, 50])
    parser.add_argument("--n", default="512", help="test images, or all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", type=Path, help="feature statistics from `sbcore stats` (extractor digits)")
    parser.add_argument("--out", type=Path, help="JSON file for the table (default: RUN/nfe_sweep.json)")
    parser.add_argument("--ot-ode", action="store_true", help="also sample every NFE with OT-ODE at sampling time")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n = args.n if args.n == "all" else int(args.n)
    specs = metric_specs(args.reference)
    trainer, meta = load_trainer(args.run, "cpu")
    rows = {"degraded input": degraded_row(trainer, n, args.seed, specs)}
    if args.baseline is not None:
        baseline, base_meta = load_trainer(args.baseline, "cpu")
        rows["regression (NFE 1)"] = row(evaluate_trainer(baseline, base_meta, n, specs, args.seed))
    for nfe in args.nfe:
        start = time.perf_counter()
        rows[f"I2SB NFE {nfe}"] = {**row(evaluate_trainer(trainer, meta, n, specs, args.seed, steps=nfe)),
                                   "seconds": time.perf_counter() - start}
        print(f"NFE {nfe}: {rows[f'I2SB NFE {nfe}']}", flush=True)
        if args.ot_ode:
            trainer.sampler.ot_ode, start = True, time.perf_counter()
            rows[f"I2SB OT-ODE NFE {nfe}"] = {**row(evaluate_trainer(trainer, meta, n, specs, args.seed, steps=nfe)),
                                              "seconds": time.perf_counter() - start}
            trainer.sampler.ot_ode = None
            print(f"OT-ODE NFE {nfe}: {rows[f'I2SB OT-ODE NFE {nfe}']}", flush=True)
    first = next(iter(rows.values()))
    print(f"{args.run} (step {meta.get('step', '?')}), {first['split']} split, n = {first['n']}")
    shown = [c for c in COLUMNS if c in first]
    print("| | " + " | ".join(shown) + " |\n|---|" + "---|" * len(shown))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{values[c]:.4g}" for c in shown) + " |")
    out_file = args.out or args.run / "nfe_sweep.json"
    out_file.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
