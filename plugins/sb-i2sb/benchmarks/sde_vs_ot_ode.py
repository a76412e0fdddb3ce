"""Quality vs NFE of one trained I2SB run, sampled with its stochastic chain (SDE) and with OT-ODE chosen
at sampling time (`sbcore sample ... ot_ode=true`, the posterior mean only).

    python plugins/sb-i2sb/benchmarks/sde_vs_ot_ode.py --run runs/i2sb-mnist-sr4x-pool --nfe 1 2 5 10 50 --n 512

The test pairs are those of nfe_sweep.py: n clean images of the run's source with ``split: test``, degraded
by the run's operator from a generator seeded with --seed; the sampler's noise is seeded with --seed before
each sweep. PSNR and SSIM on [0, 1]; feature distance: Fréchet distance of the digits CNN's features
(sbcore.metrics.digits, not Inception FID) between restorations and the clean test images. Prints a
Markdown table and writes RUN/sde_vs_ot_ode.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import Tensor

from sbcore.metrics.digits import feature_distance
from sbcore.metrics.image import psnr, ssim
from sbcore.metrics.translation import sample_in_chunks
from sbcore.sample import load_trainer


def scores(restored: Tensor, clean: Tensor) -> dict[str, float]:
    a, b = (restored.float().clamp(-1, 1) + 1) / 2, (clean.float() + 1) / 2
    return {"psnr": psnr(a, b, data_range=1.0), "ssim": ssim(a, b, data_range=1.0),
            "feature_distance": feature_distance(restored.float().clamp(-1, 1), clean.float())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="an i2sb run folder")
    parser.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 5, 10, 50])
    parser.add_argument("--n", type=int, default=512, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    trainer, meta = load_trainer(args.run, "cpu")
    spec = trainer.run.config.data.x0
    source = trainer.run.registry.get("dataset", spec.kind)(**{**spec.params, "split": "test"})
    generator = torch.Generator().manual_seed(args.seed)
    clean = source.sample(args.n, generator)
    degraded = trainer.corruption(clean, generator).x1
    trained = "OT-ODE" if trainer.process.ot_ode else "SDE"
    rows: dict[str, dict] = {"degraded input": scores(degraded, clean)}
    for nfe in args.nfe:
        for mode, ot_ode in (("SDE", False), ("OT-ODE", True)):
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            out = sample_in_chunks(trainer, "backward", degraded, steps=nfe, progress=False, ot_ode=ot_ode)
            rows[f"{mode} NFE {nfe}"] = {**scores(out.x, clean), "seconds": time.perf_counter() - start}
            print(f"{mode} NFE {nfe}: {rows[f'{mode} NFE {nfe}']}", flush=True)
    print(f"\n{args.run} (step {meta.get('step', '?')}, trained {trained}), {args.n} test images, seed {args.seed}\n")
    print("| NFE | SDE PSNR | SDE SSIM | SDE feature dist. | OT-ODE PSNR | OT-ODE SSIM | OT-ODE feature dist. |")
    print("|---|---|---|---|---|---|---|")
    d = rows["degraded input"]
    print(f"| degraded input | {d['psnr']:.2f} | {d['ssim']:.3f} | {d['feature_distance']:.1f} | | | |")
    for nfe in args.nfe:
        a, b = rows[f"SDE NFE {nfe}"], rows[f"OT-ODE NFE {nfe}"]
        print(f"| {nfe} | {a['psnr']:.2f} | {a['ssim']:.3f} | {a['feature_distance']:.1f} | "
              f"{b['psnr']:.2f} | {b['ssim']:.3f} | {b['feature_distance']:.1f} |")
    out_file = args.run / "sde_vs_ot_ode.json"
    out_file.write_text(json.dumps({"step": meta.get("step"), "n": args.n, "seed": args.seed, "rows": rows}, indent=2))
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
