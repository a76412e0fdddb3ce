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
perfect model would get with this many evaluation samples. The three are registered metrics (``eval.metrics``,
``sbcore eval metrics=plan_bw2_uvp,cbw2_uvp,cov_rel_error``) that every evaluation of a Gaussian problem
adds by itself (`gaussian_defaults`); on other runs they are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from sbcore.data.gaussian import GaussianSource
from sbcore.metrics.base import Metric, MetricUnavailable
from sbcore.metrics.gaussian import GaussianSB, bw2, fit_gaussian

if TYPE_CHECKING:
    from sbcore.metrics.translation import Translation
    from sbcore.run import Run

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


def gaussian_sb(run: Run) -> GaussianSB | None:
    """The closed-form Schrödinger bridge of a run whose data sides are both `gaussian` sources and whose
    reference is dX = sigma dW with sigma > 0 (`process.brownian_sigma`), else None. Only Gaussian sources
    are built, so asking costs nothing on image data."""
    data, registry = run.config.data, run.registry
    specs = (data.x0, data.x1)
    if any(spec is None or not issubclass(registry.get(spec.registry_kind, spec.kind), GaussianSource)
           for spec in specs):
        return None
    sigma = run.config.process.build(registry).brownian_sigma or 0.0
    if sigma <= 0:
        return None
    x0, x1 = (spec.build(registry) for spec in specs)
    return GaussianSB(x0.mean, x0.cov, x1.mean, x1.cov, sigma)


def gaussian_defaults(run: Run) -> list[str]:
    """The plan scores when the run is a Gaussian problem: what every evaluation adds by itself."""
    return list(SCORES) if gaussian_sb(run) is not None else []


class PlanScore(Metric):
    """One closed-form score of a direction's generated coupling (`SCORES`), with its floor as ``*_floor``."""

    reference = "translation"
    score: ClassVar[str]

    def __init__(self) -> None:
        self.sb: GaussianSB | None = None

    def bind(self, run: Run) -> None:
        self.sb = gaussian_sb(run)
        if self.sb is None:
            raise MetricUnavailable("needs gaussian sources as data.x0 and data.x1 and a brownian process "
                                    "with sigma > 0")

    def __call__(self, generated: Tensor, reference: Translation, generator: torch.Generator) -> dict[str, float]:
        if self.sb is None:
            raise MetricUnavailable(f"{type(self).__name__}.bind(run) was not called")
        x0, x1 = (t.flatten(1) for t in reference.pairs())
        return {"": plan_scores(self.sb, x0, x1, given=reference.start)[self.score],
                "floor": plan_floor(self.sb, len(x0), given=reference.start)[self.score]}


class PlanBW2UVP(PlanScore):
    """BW2²-UVP (%) of the generated plan against the closed-form SB plan."""

    score = "plan_bw2_uvp"


class ConditionalBW2UVP(PlanScore):
    """Conditional BW2²-UVP (%): the generated conditionals against the SB's, averaged over the inputs."""

    score = "cbw2_uvp"


class CrossCovError(PlanScore):
    """Relative Frobenius error of the generated Cov(x0, x1) against the SB's."""

    score = "cov_rel_error"


#: registered names (each the score it computes).
PLAN_METRICS: dict[str, type[PlanScore]] = {cls.score: cls for cls in (PlanBW2UVP, ConditionalBW2UVP, CrossCovError)}


def format_plan_metrics(metrics: Mapping[str, float], step: int) -> str | None:
    """The evaluation's headline for Gaussian data: each direction's scores that were computed, with their
    floors (None when there are none)."""
    keys = [key for key in metrics if key.split("/")[-1] in SCORES and f"{key}_floor" in metrics]
    if not keys:
        return None
    lines = [f"Gaussian plan vs closed-form SB, step {step} (floor: exact plan samples of the same size):"]
    for direction in dict.fromkeys(key.split("/")[0] for key in keys):
        parts = [f"{name} {metrics[f'{direction}/{name}']:.4g} (floor {metrics[f'{direction}/{name}_floor']:.2g})"
                 for name in SCORES if f"{direction}/{name}" in keys]
        lines.append(f"  {direction:>8}: " + ", ".join(parts))
    return "\n".join(lines)


def is_diagonal(sb: GaussianSB) -> bool:
    """True when both covariances are diagonal, so Cov(x0, x1)'s diagonal is the whole cross-covariance."""
    return all(bool(torch.count_nonzero(c - torch.diag(torch.diagonal(c))) == 0) for c in (sb.cov0, sb.cov1))
