"""Scores of a learned bridge against the closed-form Gaussian Schrödinger bridge.

The Gaussian numbers are those of DSBM's benchmark (Shi et al. 2023, Sec. 6.1 and Table 3): mean and
variance of the generated end, the diagonal of Cov(x0, x1) against the closed form (computed for the
run's sigma, never the sigma = 1 constant 0.618), the full-matrix relative error of Cov(x0, x1), and
the mean over the path's time slices of KL(fitted Gaussian || SB marginal), with both diagonal and
full-covariance fits and their estimator floors, since a full fit of n = 10^4 samples in d = 50 has a
floor above the published values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sbcore.metrics.gaussian import GaussianSB, kl_fit_floor, marginal_kl_slices
from sbcore.process.base import ENDS, Direction
from sbcore.seeding import derive_seeds

if TYPE_CHECKING:
    from sbcore.train.trainer import Trainer


def cross_covariance(x0: Tensor, x1: Tensor) -> Tensor:
    """Sample Cov(x0, x1), a (d, d) matrix with entry (i, j) = Cov(x0_i, x1_j), in float64."""
    a, b = x0.flatten(1).double().cpu(), x1.flatten(1).double().cpu()
    return (a - a.mean(0)).T @ (b - b.mean(0)) / (a.shape[0] - 1)


def path_metrics(
    sb: GaussianSB, direction: Direction, x_start: Tensor, x_end: Tensor, path: Tensor, times: Tensor
) -> dict[str, float]:
    """Scores of one direction's samples: x_start (n, d) data, x_end (n, d) generated, path (T, n, d) at `times`."""
    start, end = x_start.double().cpu(), x_end.double().cpu()
    x0, x1 = (start, end) if direction == "forward" else (end, start)
    end_mean, end_cov = (sb.mean1, sb.cov1) if direction == "forward" else (sb.mean0, sb.cov0)
    n, d = end.shape
    cov_hat, cov_true = cross_covariance(x0, x1), sb.cross_cov
    var = end.var(0)
    kl_diag = marginal_kl_slices(path.cpu(), sb, times.cpu(), diagonal=True)
    kl_full = marginal_kl_slices(path.cpu(), sb, times.cpu(), diagonal=False)
    return {
        "mean": float(end.mean()),
        "mean_error": float((end.mean(0) - end_mean).abs().mean()),
        "var": float(var.mean()),
        "var_error": float((var - end_cov.diagonal()).abs().mean()),
        "cov_diag": float(cov_hat.diagonal().mean()),
        "cov_diag_closed_form": float(cov_true.diagonal().mean()),
        "cov_diag_error": float((cov_hat.diagonal().mean() - cov_true.diagonal().mean()).abs()),
        "cov_rel_error": float(torch.linalg.norm(cov_hat - cov_true) / torch.linalg.norm(cov_true)),
        "kl_diag": float(kl_diag.mean()),
        "kl_full": float(kl_full.mean()),
        "kl_floor_diag": kl_fit_floor(d, n, diagonal=True),
        "kl_floor_full": kl_fit_floor(d, n, diagonal=False),
        "kl_slices": len(times),
    }


def gaussian_report(trainer: Trainer, sb: GaussianSB, n: int, seed: int = 0) -> dict[str, Any]:
    """`path_metrics` of every trained direction, sampling n paths with the trainer's current weights."""
    torch_seed, data_seed = derive_seeds(seed)
    generator = torch.Generator().manual_seed(data_seed)
    torch.manual_seed(torch_seed)
    out: dict[str, Any] = {}
    for direction in trainer.directions:
        x_start = trainer.draw(ENDS[direction][0], n, generator)
        traj = trainer.sample(direction, x_start, return_path=True)
        times = trainer.sampler.time_grid(trainer.process, direction, traj.path.shape[0] - 1)
        for key, value in path_metrics(sb, direction, x_start, traj.x, traj.path, times).items():
            out[f"{direction}/{key}"] = value
    return out

