"""One evaluation path for training and ``sbcore eval``: translate inputs in each trained direction and
keep them with what they should be compared to.

`translate` draws n inputs of each direction's start side and, when the data is paired, each input's
true partner from the same draw; it samples them in chunks (with a progress bar when there are
several) or, under DDP, each rank its share (`sbcore.launch.distributed.shard`), gathered on rank 0.
Its `Translation` per direction goes to the `sbcore_evaluate` hook and to the metrics. During
training, `evaluate_translation` adds the moment errors, Cov(x0, x1) (with its closed form for
Gaussian data) and the pictures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs
import torch
from torch import Tensor
from tqdm import tqdm

from sbcore.errors import UserError
from sbcore.io import plots
from sbcore.launch import distributed
from sbcore.metrics.eval_data import Split, evaluation_data
from sbcore.metrics.gaussian_plan import gaussian_sb, is_diagonal
from sbcore.process.base import ENDS, Direction
from sbcore.sampler.base import Trajectory
from sbcore.seeding import derive_seeds

if TYPE_CHECKING:
    from sbcore.train.trainer import Trainer

#: key of the evaluation's random streams: `derive_seeds(seed, EVAL_KEY, rank)`.
EVAL_KEY = 2
#: inputs sampled at once; the same in training and `sbcore eval`, so both draw the same noise.
CHUNK = 1000
#: what an evaluation scores: the sampler's last state, or the network's predicted end at the last step.
Output = Literal["final", "predicted_end"]
#: trajectories kept for pictures (full paths of every evaluation sample would not fit in memory).
PICTURE_SAMPLES = 64


@attrs.frozen
class Translation:
    """One direction's evaluation samples, on the CPU; row i of every tensor belongs to input i.

    direction: "forward" (x0 -> x1) or "backward" (x1 -> x0); `start`/`end` name its sides.
    inputs: (n, *D) draws of the start side.
    outputs: the Trajectory sampled from `inputs`: x (n, *D); path (T, n, *D) for vector data, else None.
    data: (n, *D) independent draws of the end side (what the outputs should be distributed like).
    partner: (n, *D) the true end-side partner of each input when the data is paired, else None.
    labels: (n,) the class of each input as its source labels it (for classifier accuracy), else None.
    codes: with ``data.latent`` the inputs' latent codes, which the sampler started from; the other tensors
        are then decoded to pixels (pictures and image metrics see pixels). None otherwise.
    """

    direction: Direction
    inputs: Tensor
    outputs: Trajectory
    data: Tensor
    partner: Tensor | None
    labels: Tensor | None = None
    codes: Tensor | None = None

    @property
    def start(self) -> str:
        return ENDS[self.direction][0]

    @property
    def end(self) -> str:
        return ENDS[self.direction][1]

    @property
    def nfe(self) -> int:
        """Network evaluations per sample."""
        return self.outputs.nfe

    def pairs(self) -> tuple[Tensor, Tensor]:
        """(x0, x1) of the generated coupling: inputs and outputs in side order."""
        x = self.outputs.x
        return (self.inputs, x) if self.direction == "forward" else (x, self.inputs)


@attrs.define
class Evaluation:
    """What `Trainer.evaluate` returns: scalar metrics and the translations they were computed on.

    step: the training step evaluated.
    metrics: name -> value, logged as ``eval/NAME`` (empty on ranks other than 0 under DDP).
    translations: direction -> Translation (empty on ranks other than 0).
    """

    step: int
    metrics: dict[str, Any] = attrs.field(factory=dict)
    translations: dict[str, Translation] = attrs.field(factory=dict)


def metric_generator(seed: int) -> torch.Generator:
    """The generator metrics subsample with, the same in training and `sbcore eval` for one seed."""
    return torch.Generator().manual_seed(derive_seeds(seed, EVAL_KEY, count=4)[3])


def _per_part_options(options: dict[str, Any], n: int, chunk: int) -> Any:
    """part index -> the sample options of that part: a per-input guidance label follows its inputs."""
    guidance = options.get("guidance")
    label = getattr(guidance, "label", None)
    if not isinstance(label, Tensor) or label.ndim == 0:
        return lambda i: options
    if len(label) != n:
        raise ValueError(f"guidance label: expected one per input ({n}), got {len(label)}")
    labels = label.split(chunk)
    return lambda i: {**options, "guidance": attrs.evolve(guidance, label=labels[i])}


def sample_in_chunks(
    trainer: Trainer, direction: Direction, x_start: Tensor, *, steps: int | None = None, chunk: int = CHUNK,
    return_path: bool = False, progress: bool = True, output: Output = "final", **options: Any,
) -> Trajectory:
    """`trainer.sample` over `chunk`-sized parts of x_start, on the CPU, with a progress bar when there are
    several parts; `options` (a plugin's sample options) go to `trainer.sample`. `output`: ``final`` keeps
    the sampler's last state as x, ``predicted_end`` the network's predicted end at the last step. A
    ``guidance`` option with one label per input (a (N,) tensor) is split along with x_start."""
    parts = x_start.split(chunk)
    options_of = _per_part_options(options, len(x_start), chunk)
    xs, paths, nfe = [], [], 0
    record = output == "predicted_end"
    with torch.no_grad():
        for i, part in enumerate(tqdm(parts, desc=f"sampling {direction}", unit="batch", leave=False,
                                      disable=not progress or len(parts) < 2)):
            traj = trainer.sample(direction, part, steps=steps, return_path=return_path, record=record,
                                  **options_of(i))
            if record and traj.predictions is None:
                raise UserError("eval.output=predicted_end: this run's sampler records no predicted ends")
            xs.append((traj.predictions[-1] if record else traj.x).float().cpu())
            if traj.path is not None:
                paths.append(traj.path.float().cpu())
            nfe = traj.nfe
    return Trajectory(torch.cat(xs), torch.cat(paths, dim=1) if paths else None, nfe)


def translate(
    trainer: Trainer, n: int | Literal["all"], seed: int, *, steps: int | None = None, chunk: int = CHUNK,
    progress: bool = True, split: Split = "test", output: Output = "final", drawn: dict[str, Any] | None = None,
) -> dict[str, Translation] | None:
    """Each trained direction's `Translation` of n inputs (None on ranks other than 0 under DDP), drawn
    from the evaluation data of `split` (`sbcore.metrics.eval_data`); ``n="all"``: every item, in order.

    Inputs, partners and data come from generators seeded by (seed, rank), the sampler's noise from the
    global RNG reseeded per direction, so one seed gives one result. The partner is the end side of the
    same draw as the inputs: `trainer.draw` of paired data returns the two sides of one draw of pairs
    (and a corruption operator degrades the clean items with the same fixed-seed generator).
    Vector data keeps every sample's path (path metrics, 2-D pictures). `drawn`, when given, receives
    ``split`` and ``sources`` (where each side's items came from)."""
    torch_seed, input_seed, data_seed = derive_seeds(seed, EVAL_KEY, distributed.rank_of(), count=3)
    # a method that makes its own pairs (I2SB's corruption operators) says so with `paired = True`
    paired = getattr(trainer, "paired", trainer.run.config.data.pairs is not None)
    result: dict[str, Translation] = {}
    with evaluation_data(trainer, split, every_item=n == "all") as used:
        if drawn is not None:
            drawn.update(split=used.split, sources=used.sources)
        local = distributed.shard(used.total if n == "all" else n)
        for direction in trainer.directions:
            start, end = ENDS[direction]
            inputs = trainer.draw(start, local, torch.Generator().manual_seed(input_seed))
            partner = trainer.draw(end, len(inputs), torch.Generator().manual_seed(input_seed)) if paired else None
            data = trainer.draw(end, local, torch.Generator().manual_seed(data_seed))
            torch.manual_seed(torch_seed)
            traj = sample_in_chunks(trainer, direction, inputs, steps=steps, chunk=chunk, progress=progress,
                                    return_path=inputs.ndim == 2 and output == "final", output=output)
            labels = source_labels(trainer, start, len(inputs), torch.Generator().manual_seed(input_seed))
            codes = None
            if trainer.latent_codec() is not None:  # a latent bridge: scored and pictured in pixels
                codes = inputs
                inputs, data, partner = (pixels(trainer, t) for t in (inputs, data, partner))
                traj = Trajectory(pixels(trainer, traj.x), None, traj.nfe)
            codes = distributed.gather_to_main(codes) if codes is not None else None
            gathered = [distributed.gather_to_main(t) for t in (inputs, data, traj.x)]
            partner = distributed.gather_to_main(partner) if partner is not None else None
            labels = distributed.gather_to_main(labels) if labels is not None else None
            path = distributed.gather_to_main(traj.path, dim=1) if traj.path is not None else None
            if gathered[0] is not None:
                result[direction] = Translation(direction, gathered[0], Trajectory(gathered[2], path, traj.nfe),
                                                gathered[1], partner, labels, codes)
    return result if distributed.rank_of() == 0 else None


def pixels(trainer: Trainer, x: Tensor | None) -> Tensor | None:
    """Latent codes decoded to pixels on the trainer's device, returned on the CPU."""
    return None if x is None else trainer.to_pixels(x.to(trainer.device)).float().cpu()


def source_labels(trainer: Trainer, side: str, n: int, generator: torch.Generator) -> Tensor | None:
    """The labels of the n items `trainer.draw(side, n, generator)` returns, read from the source it draws
    from (None when that source has no labels). A corruption operator's degraded images keep the class of
    their clean source."""
    sources = getattr(trainer, "sources", None)
    source = sources.get(side) if sources else (getattr(trainer, "pairs", None) or getattr(trainer, "clean", None))
    labels_of = getattr(source, "labels_of_draw", None)
    return labels_of(n, generator) if labels_of is not None else None


def evaluate_translation(trainer: Trainer) -> Evaluation:
    """Translate `train.eval_samples` inputs in each trained direction (seed: the run's) and compare with
    the data: moments, Cov(x0, x1) (and its closed form for Gaussians), scatter/path plots or image
    grids and GIFs. Under DDP every rank samples its share; rank 0 alone gets translations and metrics."""
    run = trainer.run
    drawn: dict[str, Any] = {}
    translations = translate(trainer, run.config.train.eval_samples, run.config.seed,
                             progress=run.config.train.progress and run.is_main, split=run.config.eval.split,
                             output=run.config.eval.output, drawn=drawn)
    if translations is None:
        return Evaluation(trainer.step)
    metrics: dict[str, Any] = {"split": drawn["split"]}
    metrics.update({f"{direction}/n": len(tr.inputs) for direction, tr in translations.items()})
    for direction, tr in translations.items():
        metrics.update({f"{direction}/{k}": v for k, v in moment_metrics(trainer, tr).items()})
    draw_pictures(trainer, translations)
    sb = gaussian_sb(run)  # its plan scores are registered metrics, added by the sbcore_evaluate hook
    if sb is not None:
        closed = torch.diagonal(sb.cross_cov)
        metrics["closed_form/cov_x0_x1_diag"] = float(closed.mean())
        if is_diagonal(sb):  # otherwise the diagonal of Cov(x0, x1) is not the coupling
            _print_cov_table(trainer, translations, closed)
    return Evaluation(trainer.step, metrics, translations)


def moment_metrics(trainer: Trainer, tr: Translation) -> dict[str, float]:
    """Mean/variance errors against the end side, NFE, and the mean of Cov(x0, x1)'s diagonal."""
    mean, var = _moments(tr.end, tr.data, trainer)
    flat = tr.outputs.x.flatten(1).double()
    return {"mean_error": float((flat.mean(0) - mean).abs().mean()),
            "var_error": float((flat.var(0) - var).abs().mean()),
            "nfe": tr.nfe, "cov_x0_x1_diag": float(cross_cov_diag(*tr.pairs()).mean())}


def draw_pictures(trainer: Trainer, translations: dict[str, Translation]) -> None:
    """2-D data: scatter and paths; images: input, output (and partner) grids and a trajectory GIF."""
    folder = trainer.run.dir / "pictures"
    folder.mkdir(exist_ok=True)
    for direction, tr in translations.items():
        tag = f"{direction}_step{trainer.step:06d}"
        if tr.inputs.ndim == 2:
            title = f"{direction}: {tr.start} -> {tr.end} (step {trainer.step})"
            source, target = tr.inputs[:, :2], tr.data[:, :2]
            plots.scatter_2d(folder / f"{tag}.png", source=source, target=target, generated=tr.outputs.x[:, :2],
                             title=title)
            plots.trajectories_2d(folder / f"{tag}_paths.png", tr.outputs.path[:, :PICTURE_SAMPLES, :2],
                                  source=source, target=target, title=title)
        elif tr.inputs.ndim == 4:
            start = tr.codes if tr.codes is not None else tr.inputs
            few = trainer.sample(direction, start[:PICTURE_SAMPLES], return_path=True)
            plots.image_grid(folder / f"{tag}_input.png", tr.inputs[:PICTURE_SAMPLES])
            plots.image_grid(folder / f"{tag}_output.png", pixels(trainer, few.x))
            if tr.partner is not None:
                plots.image_grid(folder / f"{tag}_partner.png", tr.partner[:PICTURE_SAMPLES])
            plots.trajectory_gif(folder / f"{tag}.gif", torch.stack([pixels(trainer, x) for x in few.path[:, :16]]))


def _moments(side: str, samples: Tensor, trainer: Trainer) -> tuple[Tensor, Tensor]:
    """Exact mean/variance when the source knows them (Gaussians), else from samples."""
    source = (getattr(trainer, "sources", None) or {}).get(side)
    if source is not None and hasattr(source, "cov"):
        return source.mean.double(), torch.diagonal(source.cov).double()
    flat = samples.flatten(1).double()
    return flat.mean(0), flat.var(0)


def _print_cov_table(trainer: Trainer, translations: dict[str, Translation], closed: Tensor) -> None:
    """Per-dimension Cov(x0, x1) of each direction's generated pairs next to the closed form."""
    columns = {direction: cross_cov_diag(*tr.pairs()) for direction, tr in translations.items()}
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


def cross_cov_diag(x0: Tensor, x1: Tensor) -> Tensor:
    """Per-dimension sample covariance of row-aligned x0 and x1, in float64."""
    a = x0.flatten(1).double()
    b = x1.flatten(1).double()
    return ((a - a.mean(0)) * (b - b.mean(0))).sum(0) / (a.shape[0] - 1)
