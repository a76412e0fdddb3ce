"""A trained Gaussian DSBM run sampled by its SDE and by the probability-flow ODE of its two networks.

    sbcore run plugin=dsbm examples/dsbm/gaussian.yaml data.x0.dim=20 data.x1.dim=20 \
        method.inner_iters=2000 method.outer_iters=4 train.threads=1 name=dsbm-d20
    python plugins/sb-dsbm/benchmarks/ode_vs_sde.py --run runs/dsbm-d20 [--n 10000] [--seed 0] [--out FILE.json]

Each sampler integrates both directions from n fresh draws of its start side (EMA weights, seeded), and is
scored against the closed-form SB (`sbcore.metrics.gaussian.GaussianSB`): KL(fitted Gaussian || SB marginal)
at the end of the path (t = 1 forward, t = 0 backward) with a full and a diagonal fit, the mean of that KL
over the path's 21 time slices (DSBM's Table 3 metric, `sb_dsbm.metrics.path_metrics`), and the plan
scores of the pairs (`sbcore.metrics.gaussian_plan.plan_scores`), beside the floors that n exact samples
get. The ODE keeps the marginals but not the plan: its (x0, x1) is a deterministic map, not the entropic
coupling (Shi et al. 2023), so its plan scores measure that difference, not an error of the networks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from sb_dsbm.metrics import path_metrics

from sbcore.metrics.gaussian import fit_gaussian, kl_fit_floor, kl_gaussian
from sbcore.metrics.gaussian_plan import gaussian_sb, plan_floor, plan_scores
from sbcore.process.base import ENDS
from sbcore.sample import load_trainer
from sbcore.seeding import derive_seeds

#: (label, sampler kind, params): the paper's SDE sampler, a finer SDE, and the ODE by three solvers.
SAMPLERS: list[tuple[str, str, dict[str, Any]]] = [
    ("SDE, Euler-Maruyama 20", "euler_maruyama", {"steps": 20}),
    ("SDE, Euler-Maruyama 100", "euler_maruyama", {"steps": 100}),
    ("ODE, Euler 20", "probability_flow", {"solver": "euler", "steps": 20}),
    ("ODE, Heun 20", "probability_flow", {"solver": "heun", "steps": 20}),
    ("ODE, dopri5 rtol 1e-3", "probability_flow", {"solver": "dopri5", "steps": 20, "rtol": 1e-3, "atol": 1e-3}),
    ("ODE, dopri5 rtol 1e-5 (DSBM's)", "probability_flow",
     {"solver": "dopri5", "steps": 20, "rtol": 1e-5, "atol": 1e-5}),
]


def end_kl(sb, direction: str, x_end: torch.Tensor) -> dict[str, float]:
    mean, cov = (sb.mean1, sb.cov1) if direction == "forward" else (sb.mean0, sb.cov0)
    m, c = fit_gaussian(x_end)
    diag = torch.diag_embed(c.diagonal())
    return {"end_kl_full": float(kl_gaussian(m, c, mean, cov)),
            "end_kl_diag": float(kl_gaussian(m, diag, mean, torch.diag_embed(cov.diagonal())))}


def score(trainer, sb, n: int, seed: int) -> dict[str, dict[str, float]]:
    """Every direction of the trainer's current sampler, from the same seeded start draws."""
    torch_seed, data_seed = derive_seeds(seed)
    out: dict[str, dict[str, float]] = {}
    for direction in ("forward", "backward"):
        start_side = ENDS[direction][0]
        x_start = trainer.draw(start_side, n, torch.Generator().manual_seed(data_seed))
        torch.manual_seed(torch_seed)
        started = time.perf_counter()
        with torch.no_grad():
            traj = trainer.sample(direction, x_start, return_path=True)
        seconds = time.perf_counter() - started
        times = trainer.sampler.time_grid(trainer.process, direction, traj.path.shape[0] - 1)
        x_end = traj.x.double().cpu()
        x0, x1 = (x_start.double(), x_end) if direction == "forward" else (x_end, x_start.double())
        row = {"nfe": traj.nfe, "seconds": round(seconds, 2), **end_kl(sb, direction, x_end)}
        path = path_metrics(sb, direction, x_start, traj.x, traj.path, times)
        row |= {"path_kl_full": path["kl_full"], "path_kl_diag": path["kl_diag"]}
        row |= plan_scores(sb, x0, x1, given=start_side)
        out[direction] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    trainer, meta = load_trainer(args.run, "cpu")
    sb = gaussian_sb(trainer.run)
    if sb is None:
        raise SystemExit(f"{args.run}: not a Gaussian problem with a brownian process (no closed-form SB)")
    registry = trainer.run.registry
    results: dict[str, Any] = {"run": str(args.run), "step": meta.get("step"), "n": args.n, "seed": args.seed,
                               "dim": sb.dim, "floors": {"kl_full": kl_fit_floor(sb.dim, args.n),
                                                         "kl_diag": kl_fit_floor(sb.dim, args.n, diagonal=True),
                                                         **plan_floor(sb, args.n)},
                               "rows": {}}
    for label, kind, params in SAMPLERS:
        trainer.sampler = registry.get("sampler", kind)(**params)  # load_trainer loaded the EMA weights
        results["rows"][label] = score(trainer, sb, args.n, args.seed)
        print(label, json.dumps(results["rows"][label]), flush=True)
    f = results["floors"]
    print(f"\n{args.run} at step {results['step']}, d = {sb.dim}, n = {args.n}, seed {args.seed}; "
          f"floors: KL full {f['kl_full']:.4f} / diag {f['kl_diag']:.4f}, plan_bw2_uvp {f['plan_bw2_uvp']:.3f}, "
          f"cbw2_uvp {f['cbw2_uvp']:.3f}, cov_rel_error {f['cov_rel_error']:.3f}\n")
    print("| sampler | NFE fwd / bwd | KL at t = 1 (fwd), full / diag | KL at t = 0 (bwd), full / diag "
          "| path KL (21 slices) fwd, full / diag | plan_bw2_uvp fwd | cbw2_uvp fwd | cov_rel_error fwd |")
    print("|---|---|---|---|---|---|---|---|")
    for label, row in results["rows"].items():
        fw, bw = row["forward"], row["backward"]
        print(f"| {label} | {fw['nfe']} / {bw['nfe']} | {fw['end_kl_full']:.4f} / {fw['end_kl_diag']:.4f} "
              f"| {bw['end_kl_full']:.4f} / {bw['end_kl_diag']:.4f} | {fw['path_kl_full']:.4f} / "
              f"{fw['path_kl_diag']:.4f} | {fw['plan_bw2_uvp']:.3f} | {fw['cbw2_uvp']:.3f} "
              f"| {fw['cov_rel_error']:.3f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
