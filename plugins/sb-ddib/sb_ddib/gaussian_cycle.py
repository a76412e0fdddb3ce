"""Cycle error vs NFE of DDIB between two Gaussians with exact eps-predictors (no training).

    python -m sb_ddib.gaussian_cycle [--n 20000] [--T 1000] [--steps 10,20,50,100,250,1000]

N(m1, s1^2 I) -> N(m2, s2^2 I) -> back, m1 = (1, -0.5), s1 = 0.5, m2 = (-1, 2), s2 = 1.5 (the spec's Tier A,
§2.7). The exact eps of N(m, s^2 I) under the VP path is b (x - a m) / (a^2 s^2 + b^2); DDIB should approach
the OT map m2 + (s2/s1)(x - m1). Rows: DDIM with guided-diffusion's conventions (reference_compat), plain
DDIM, and the second-order `ddim_heun` at the same NFE per solve (half the steps).
"""

from __future__ import annotations

import argparse

import torch

from sbcore.process import VPDiffusion
from sbcore.sampler import Predictor
from sbcore.sampler.ddim import DDIM, DDIMHeun

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
    args = parser.parse_args()
    torch.set_num_threads(1)
    process = VPDiffusion(steps=args.T)
    x = M1 + S1 * torch.randn(args.n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    print(f"T = {args.T}, n = {args.n}; NFE per solve (4 solves per cycle)")
    print("| NFE | DDIM compat: cycle mean / max, OT err | DDIM plain: cycle mean / max "
          "| ddim_heun: cycle mean / max, OT err |")
    print("|---|---|---|---|")
    for nfe in (int(s) for s in args.steps.split(",")):
        compat = cycle_row(DDIM(steps=nfe, grid="respaced", reference_compat=True), process, x)
        plain = (cycle_row(DDIM(steps=nfe, grid="respaced"), process, x) if nfe < args.T else None)
        heun = cycle_row(DDIMHeun(steps=nfe // 2, grid="respaced"), process, x) if nfe >= 2 else None
        cells = [f"{compat['cycle_mean']:.4g} / {compat['cycle_max']:.4g}, {compat['ot_error']:.4g}",
                 f"{plain['cycle_mean']:.4g} / {plain['cycle_max']:.4g}" if plain else "-",
                 f"{heun['cycle_mean']:.3g} / {heun['cycle_max']:.3g}, {heun['ot_error']:.4g}" if heun else "-"]
        print(f"| {nfe} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
