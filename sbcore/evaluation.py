"""Evaluation shared by translation methods: sample both directions, compare, draw pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sbcore.io import plots
from sbcore.launch import distributed
from sbcore.metrics.gaussian import GaussianSB
from sbcore.sampler.base import Trajectory
from sbcore.seeding import derive_seeds

if TYPE_CHECKING:
    from sbcore.train.trainer import Trainer

OTHER = {"x0": "x1", "x1": "x0"}
START = {"forward": "x0", "backward": "x1"}
#: trajectories kept for pictures (full paths of every evaluation sample would not fit in memory).
PICTURE_SAMPLES = 64


def _moments(side: str, samples: Tensor, trainer: Trainer) -> tuple[Tensor, Tensor]:
    """Exact mean/variance when the source knows them (Gaussians), else from samples."""
    source = (getattr(trainer, "sources", None) or {}).get(side)
    if source is not None and hasattr(source, "cov"):
        return source.mean.double(), torch.diagonal(source.cov).double()
    flat = samples.flatten(1).double()
    return flat.mean(0), flat.var(0)


def _sample_shard(trainer: Trainer, direction: str, n: int, generator: torch.Generator) -> dict[str, Any] | None:
    """This rank's share of n (start, data, sampled) triples, gathered on rank 0 (None elsewhere)."""
    start, end = START[direction], OTHER[START[direction]]
    local = distributed.shard(n)
    x_start, x_true = trainer.draw(start, local, generator), trainer.draw(end, local, generator)
    traj = trainer.sample(direction, x_start, return_path=x_start.ndim == 2)
    parts = {"start": distributed.gather_to_main(x_start), "true": distributed.gather_to_main(x_true),
             "x": distributed.gather_to_main(traj.x),
             "path": distributed.gather_to_main(traj.path, dim=1) if traj.path is not None else None}
    if parts["start"] is None:
        return None
    return {"start": parts["start"], "true": parts["true"], "traj": Trajectory(parts["x"], parts["path"], traj.nfe)}


def evaluate_translation(trainer: Trainer) -> dict[str, Any]:
    """Translate `train.eval_samples` inputs in each trained direction and compare with the data:
    moments, Cov(x0, x1) (and its closed form for Gaussians), scatter/path plots or image grids
    and GIFs. Under DDP the samples are drawn on every rank and gathered on rank 0, which alone
    returns metrics (`{}` elsewhere)."""
    run = trainer.run
    n = run.config.train.eval_samples
    generator = torch.Generator().manual_seed(derive_seeds(run.config.seed, 2, distributed.rank_of())[0])
    metrics: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    picture_dir = run.dir / "pictures"
    gathered = {direction: _sample_shard(trainer, direction, n, generator) for direction in trainer.directions}
    if not run.is_main:
        return {}
    picture_dir.mkdir(exist_ok=True)
    for direction in trainer.directions:
        start, end = START[direction], OTHER[START[direction]]
        x_start, x_true, traj = gathered[direction]["start"], gathered[direction]["true"], gathered[direction]["traj"]
        vector = x_start.ndim == 2
        x_gen = traj.x.float().cpu()
        samples[direction] = traj
        samples[start], samples[f"{end}_data"] = x_start, x_true
        mean, var = _moments(end, x_true, trainer)
        flat = x_gen.flatten(1).double()
        metrics[f"{direction}/mean_error"] = float((flat.mean(0) - mean).abs().mean())
        metrics[f"{direction}/var_error"] = float((flat.var(0) - var).abs().mean())
        metrics[f"{direction}/nfe"] = traj.nfe
        pairs = (x_start, x_gen) if direction == "forward" else (x_gen, x_start)
        metrics[f"{direction}/cov_x0_x1_diag"] = float(_cross_cov_diag(*pairs).mean())
        tag = f"{direction}_step{trainer.step:06d}"
        if vector:
            path = traj.path.float().cpu()
            title = f"{direction}: {start} -> {end} (step {trainer.step})"
            plots.scatter_2d(picture_dir / f"{tag}.png", source=x_start[:, :2], target=x_true[:, :2],
                             generated=x_gen[:, :2], title=title)
            plots.trajectories_2d(picture_dir / f"{tag}_paths.png", path[:, :PICTURE_SAMPLES, :2],
                                  source=x_start[:, :2], target=x_true[:, :2], title=title)
        else:
            few = trainer.sample(direction, x_start[:PICTURE_SAMPLES], return_path=True)
            plots.image_grid(picture_dir / f"{tag}_input.png", x_start[:PICTURE_SAMPLES])
            plots.image_grid(picture_dir / f"{tag}_output.png", few.x.float().cpu())
            plots.trajectory_gif(picture_dir / f"{tag}.gif", few.path[:, :16].float().cpu())
    sb = gaussian_sb(trainer)
    if sb is not None:
        closed = torch.diagonal(sb.cross_cov)
        metrics["closed_form/cov_x0_x1_diag"] = float(closed.mean())
        _print_cov_table(trainer, samples, closed)
    metrics["_samples"] = samples
    return metrics


def _print_cov_table(trainer: Trainer, samples: dict[str, Any], closed: Tensor) -> None:
    """Per-dimension Cov(x0, x1) of each direction's generated pairs next to the closed form."""
    columns = {}
    for direction, traj in samples.items():
        if direction in START:
            start = samples[START[direction]]
            pairs = (start, traj.x.cpu()) if direction == "forward" else (traj.x.cpu(), start)
            columns[direction] = _cross_cov_diag(*pairs)
    header = "dim  " + "  ".join(f"{d:>9}" for d in columns) + "  closed form"
    lines = [f"Cov(x0, x1) diagonal, step {trainer.step}:", header]
    for i in range(min(len(closed), 10)):
        row = "  ".join(f"{col[i]:9.4f}" for col in columns.values())
        lines.append(f"{i:>3}  {row}  {closed[i]:11.4f}")
    if len(closed) > 10:
        lines.append(f"... ({len(closed) - 10} more dimensions; means: "
                     + ", ".join(f"{d} {col.mean():.4f}" for d, col in columns.items())
                     + f", closed form {closed.mean():.4f})")
    trainer.run.echo("\n".join(lines))


def _cross_cov_diag(x0: Tensor, x1: Tensor) -> Tensor:
    a = x0.flatten(1).double()
    b = x1.flatten(1).double()
    return ((a - a.mean(0)) * (b - b.mean(0))).sum(0) / (a.shape[0] - 1)


def gaussian_sb(trainer: Trainer) -> GaussianSB | None:
    """The closed-form Schrödinger bridge when both data sides are Gaussian sources and the reference is
    dX = sigma dW with sigma > 0, else None."""
    sigma = trainer.process.brownian_sigma or 0.0
    sources = getattr(trainer, "sources", None) or {}
    x0, x1 = sources.get("x0"), sources.get("x1")
    if sigma <= 0 or not (hasattr(x0, "cov") and hasattr(x1, "cov")):
        return None
    return GaussianSB(x0.mean, x0.cov, x1.mean, x1.cov, sigma)
