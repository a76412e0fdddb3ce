"""Closed-form scores of a learned coupling between two Gaussians, next to their sampling floor.

When both data sides are Gaussian (any mean, isotropic, diagonal or full covariance) and the reference is
dX = sigma dW, the Schrödinger bridge's static plan pi* = N((a, b), [[A, C], [Cᵀ, B]]) is known
(`sbcore.metrics.gaussian.GaussianSB`). A direction's generated pairs (x0, x1) are scored against it:

- ``plan_bw2_uvp``: BW2²-UVP of the plan, 100 · BW2²(N̂, pi*) / Tr Cov(pi*) in percent, N̂ the Gaussian
  fitted to the 2d-dimensional pairs (Gushchin et al. 2023, Sec. 4, the UVP normalisation of
  `sbcore.metrics.gaussian.bw2_uvp`).
- ``cbw2_uvp``: conditional BW2²-UVP, 100 / Tr Cov(end) · mean_i BW2²(N̂(· | x_i), pi*(· | x_i)) over the
  direction's inputs x_i (Gushchin et al. 2023, Sec. 4). N̂(· | x) is the conditional of the fitted joint
  Gaussian, exact for the linear-Gaussian plans a Gaussian problem has, and it needs one sample per
  input instead of the benchmark's 1 000.
- ``cov_rel_error``: ‖Ĉ − C‖_F / ‖C‖_F, the relative error of the whole cross-covariance Cov(x0, x1)
  (its diagonal alone means nothing once A or B is not diagonal).

Each comes with ``*_floor``: the same score of as many exact plan samples (a fixed seed), the value a
perfect model would get with this many evaluation samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sbcore.metrics.gaussian import GaussianSB, bw2, fit_gaussian

if TYPE_CHECKING:
    from sbcore.metrics.translation import Translation

#: score names, in the order they are printed.
SCORES = ("plan_bw2_uvp", "cbw2_uvp", "cov_rel_error")
#: seed of the exact plan samples that give the floors.
FLOOR_SEED = 0


def _reversed(sb: GaussianSB) -> GaussianSB:
    """The same bridge seen from x1: its plan is pi* with the two blocks swapped (the cost is symmetric)."""
    return GaussianSB(sb.mean1, sb.cov1, sb.mean0, sb.cov0, sb.sigma)


def plan_scores(sb: GaussianSB, x0: Tensor, x1: Tensor, given: str = "x0") -> dict[str, float]:
    """The three scores of row-aligned pairs (x0, x1) (each (n, d)); cBW2²-UVP conditions on `given`."""
    if x0.ndim != 2 or x0.shape != x1.shape or x0.shape[1] != sb.dim or x0.shape[0] < 2:
        raise ValueError(f"x0, x1: expected two (n, {sb.dim}) arrays with n >= 2, got {tuple(x0.shape)} and "
                         f"{tuple(x1.shape)}")
    if given not in ("x0", "x1"):
        raise ValueError(f"given: expected 'x0' or 'x1', got {given!r}")
    d = sb.dim
    mean, cov = fit_gaussian(torch.cat([x0, x1], dim=1))
    plan_cov = sb.plan_cov()
    plan = 100.0 * float(bw2(mean, cov, sb.plan_mean(), plan_cov) / plan_cov.trace())
    cross, closed = cov[:d, d:], sb.cross_cov
    rel = float(torch.linalg.matrix_norm(cross - closed) / torch.linalg.matrix_norm(closed))
    # conditional of the fitted joint: end | start ~ N(m_e + (x - m_s) S_ss⁻¹ S_se, S_ee - S_es S_ss⁻¹ S_se)
    bridge, inputs, (s, e) = (sb, x0, (slice(0, d), slice(d, 2 * d))) if given == "x0" else \
        (_reversed(sb), x1, (slice(d, 2 * d), slice(0, d)))
    gain = torch.linalg.solve(cov[s, s], cov[s, e])
    fit_mean = mean[e] + (inputs.double() - mean[s]) @ gain
    fit_cov = cov[e, e] - cov[e, s] @ gain
    true_mean, true_cov = bridge.conditional(inputs)
    # one shared covariance on each side: the Bures part of BW2² is the same for every input
    bures = bw2(torch.zeros(d), 0.5 * (fit_cov + fit_cov.mT), torch.zeros(d), true_cov)
    cond = (fit_mean - true_mean).square().sum(1).mean() + bures
    return {"plan_bw2_uvp": plan, "cbw2_uvp": 100.0 * float(cond / bridge.cov1.trace()), "cov_rel_error": rel}


def plan_floor(sb: GaussianSB, n: int, given: str = "x0") -> dict[str, float]:
    """`plan_scores` of n exact plan samples (seed `FLOOR_SEED`): what estimation alone costs at this n."""
    x0, x1 = sb.sample_plan(n, torch.Generator().manual_seed(FLOOR_SEED))
    return plan_scores(sb, x0, x1, given)


def plan_metrics(sb: GaussianSB, translations: Mapping[str, Translation]) -> dict[str, float]:
    """``{direction}/{score}`` and ``{direction}/{score}_floor`` for every translated direction."""
    out: dict[str, float] = {}
    for direction, tr in translations.items():
        x0, x1 = (t.flatten(1) for t in tr.pairs())
        scores = plan_scores(sb, x0, x1, given=tr.start)
        floor = plan_floor(sb, len(x0), given=tr.start)
        for name in SCORES:
            out[f"{direction}/{name}"] = scores[name]
            out[f"{direction}/{name}_floor"] = floor[name]
    return out


def format_plan_metrics(metrics: Mapping[str, float], step: int) -> str:
    """The evaluation's headline for Gaussian data: each direction's scores with their floors."""
    directions = list(dict.fromkeys(key.split("/")[0] for key in metrics if key.endswith("/plan_bw2_uvp")))
    lines = [f"Gaussian plan vs closed-form SB, step {step} (floor: exact plan samples of the same size):"]
    for direction in directions:
        parts = [f"{name} {metrics[f'{direction}/{name}']:.4g} (floor {metrics[f'{direction}/{name}_floor']:.2g})"
                 for name in SCORES]
        lines.append(f"  {direction:>8}: " + ", ".join(parts))
    return "\n".join(lines)


def is_diagonal(sb: GaussianSB) -> bool:
    """True when both covariances are diagonal, so Cov(x0, x1)'s diagonal is the whole cross-covariance."""
    return all(bool(torch.count_nonzero(c - torch.diag(torch.diagonal(c))) == 0) for c in (sb.cov0, sb.cov1))
