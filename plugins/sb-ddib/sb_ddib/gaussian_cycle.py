"""Cycle error vs NFE of DDIB between two Gaussians with exact eps-predictors (no training).

    python -m sb_ddib.gaussian_cycle [--n 20000] [--T 1000] [--steps 10,20,50,100,250,1000] [--rtol 1e-2,...]

N(m1, s1^2 I) -> N(m2, s2^2 I) -> back, m1 = (1, -0.5), s1 = 0.5, m2 = (-1, 2), s2 = 1.5 (the spec's Tier A,
§2.7). The exact eps of N(m, s^2 I) under the VP path is b (x - a m) / (a^2 s^2 + b^2); DDIB should approach
the OT map m2 + (s2/s1)(x - m1). First table, per NFE per solve: DDIM with guided-diffusion's conventions
(reference_compat), plain DDIM, the second-order `ddim_heun` (half the steps), and the multistep
`dpm_solver_pp` (DPM-Solver++(2M)) on the index-uniform (respaced) grid and on its log-SNR grid. Second
table: `adaptive_ode` (dopri5) at several tolerances, whose NFE is what the error control chose.
"""

from __future__ import annotations

import argparse

import torch

from sbcore.process import VPDiffusion
from sbcore.sampler import Predictor
from sbcore.sampler.adaptive import AdaptiveODE
from sbcore.sampler.ddim import DDIM, DDIMHeun, DPMSolverPP

M1, S1 = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5
M2, S2 = torch.tensor([-1.0, 2.0], dtype=torch.float64), 1.5


def cycle_row(sampler, process: VPDiffusion, x: torch.Tensor) -> dict[str, float]:
    def solve(m, s, start, direction):
        grid = sampler.time_grid(process, direction, dtype=torch.float64)
        return sampler.sample(Predictor(process.gaussian_eps(m, s), process, direction, "eps"), start, grid)

    z = solve(M1, S1, x, "forward")
    y = solve(M2, S2, z.x, "backward").x
    back = solve(M1, S1, solve(M2, S2, y, "forward").x, "backward").x
    err = (back - x).norm(dim=1)
    return {"nfe": z.nfe, "cycle_mean": float(err.mean()), "cycle_max": float(err.max()),
            "ot_error": float((y - (M2 + S2 / S1 * (x - M1))).norm(dim=1).mean()),
            "latent_std": float(z.x.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--steps", default="10,20,50,100,250,1000")
    parser.add_argument("--rtol", default="1e-2,1e-3,1e-4,1e-5,1e-6")
    args = parser.parse_args()
    torch.set_num_threads(1)
    process = VPDiffusion(steps=args.T)
    x = M1 + S1 * torch.randn(args.n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    print(f"T = {args.T}, n = {args.n}; NFE per solve (4 solves per cycle); cycle mean / max, OT err")
    print("| NFE | DDIM compat | DDIM plain | ddim_heun | dpm_solver_pp, respaced | dpm_solver_pp, logsnr |")
    print("|---|---|---|---|---|---|")

    def cell(row: dict[str, float] | None) -> str:
        return "-" if row is None else f"{row['cycle_mean']:.3g} / {row['cycle_max']:.3g}, {row['ot_error']:.4g}"

    for nfe in (int(s) for s in args.steps.split(",")):
        rows = [cycle_row(DDIM(steps=nfe, grid="respaced", reference_compat=True), process, x),
                cycle_row(DDIM(steps=nfe, grid="respaced"), process, x) if nfe < args.T else None,
                cycle_row(DDIMHeun(steps=nfe // 2, grid="respaced"), process, x) if nfe >= 2 else None,
                cycle_row(DPMSolverPP(steps=nfe, grid="respaced"), process, x) if nfe < args.T else None,
                cycle_row(DPMSolverPP(steps=nfe, grid="logsnr"), process, x)]
        print(f"| {nfe} | " + " | ".join(cell(r) for r in rows) + " |", flush=True)
    print("\n| adaptive_ode (dopri5), rtol = atol | NFE of the first encode | cycle mean / max, OT err |")
    print("|---|---|---|")
    for rtol in (float(s) for s in args.rtol.split(",")):
        row = cycle_row(AdaptiveODE(rtol=rtol, atol=rtol), process, x)
        print(f"| {rtol:g} | {row['nfe']} | {cell(row)} |", flush=True)

if __name__ == "__main__":
    main()
