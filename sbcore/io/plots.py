"""Pictures of a run: 2-D scatter plots and trajectories, image grids, trajectory GIFs, metric curves.

Figures are drawn on matplotlib's Agg canvas (never a display, no pyplot global state), and every file
is written to a temporary name in the target folder and then renamed over the target, so a crash or a
failed write never leaves a truncated picture behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sbcore.io.files import atomic_write

ArrayLike = Tensor | np.ndarray

#: colours of the source, target and generated clouds in every 2-D picture.
COLOURS = {"source": "tab:blue", "target": "tab:orange", "generated": "tab:green"}
MAX_GIF_FRAMES = 30


def _points(x: ArrayLike, what: str) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{what}: expected points of shape (N, 2), got {a.shape}")
    return a


def _save_figure(path: str | os.PathLike[str], fig: Any) -> Path:
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=fig.dpi))


def _new_figure(width: float, height: float, dpi: int = 100) -> Any:
    """A matplotlib Figure on an Agg canvas (matplotlib is imported on use: keeps `sbcore --help` fast)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_clouds(ax: Any, clouds: Mapping[str, np.ndarray], size: float) -> None:
    for label, pts in clouds.items():
        ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.6, linewidths=0, color=COLOURS[label], label=label)
    ax.set_aspect("equal")


def scatter_2d(
    path: str | os.PathLike[str],
    *,
    source: ArrayLike,
    target: ArrayLike | None = None,
    generated: ArrayLike | None = None,
    title: str = "",
) -> Path:
    """Source, (optionally) target and generated 2-D point clouds in three colours, equal aspect."""
    clouds = {"source": _points(source, "source")}
    if target is not None:
        clouds["target"] = _points(target, "target")
    if generated is not None:
        clouds["generated"] = _points(generated, "generated")
    fig = _new_figure(5, 5)
    ax = fig.add_subplot()
    _draw_clouds(ax, clouds, size=3)
    fig.legend(markerscale=4, loc="outside lower center", ncols=len(clouds))
    ax.set_title(title)
    return _save_figure(path, fig)


def trajectories_2d(
    path: str | os.PathLike[str],
    paths: ArrayLike,
    *,
    source: ArrayLike | None = None,
    target: ArrayLike | None = None,
    n_lines: int = 64,
    title: str = "",
) -> Path:
    """Thin lines for the first `n_lines` trajectories of `paths` (T, B, 2) over the endpoint clouds.

    The clouds default to the paths' own start (paths[0]) and end (paths[-1]) points.
    """
    p = paths.detach().cpu().double().numpy() if isinstance(paths, Tensor) else np.asarray(paths, np.float64)
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"paths: expected shape (T, B, 2), got {p.shape}")
    clouds = {
        "source": _points(p[0] if source is None else source, "source"),
        "target": _points(p[-1] if target is None else target, "target"),
    }
    fig = _new_figure(5, 5)
    ax = fig.add_subplot()
    _draw_clouds(ax, clouds, size=3)
    lines = p[:, :n_lines]
    ax.plot(lines[..., 0], lines[..., 1], color="black", linewidth=0.5, alpha=0.5)
    fig.legend(markerscale=4, loc="outside lower center", ncols=len(clouds))
    ax.set_title(title)
    return _save_figure(path, fig)


def _image_batch(images: Tensor, what: str) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{what}: expected a tensor of shape (B, C, H, W), got {got}")
    return images.detach().cpu().float()


def image_grid(path: str | os.PathLike[str], images: Tensor, nrow: int = 8) -> Path:
    """Images (B, C, H, W) in [-1, 1] (values outside are clipped) as one PNG grid, `nrow` per row."""
    from torchvision.utils import save_image

    batch = _image_batch(images, "images")
    return atomic_write(
        path, lambda tmp: save_image(batch, tmp, nrow=nrow, normalize=True, value_range=(-1, 1), format="png")
    )


def before_after_grid(path: str | os.PathLike[str], before: Tensor, after: Tensor, nrow: int = 8,
                      rows: int = 4) -> Path:
    """Inputs and their translations, (B, C, H, W) in [-1, 1]: each row of (at most) `nrow` inputs above
    the row of their outputs, for the first `rows` * `nrow` pairs (whole rows only)."""
    from torchvision.utils import save_image

    first, second = _image_batch(before, "before"), _image_batch(after, "after")
    if first.shape != second.shape:
        raise ValueError(f"before and after: expected the same shape, got {tuple(first.shape)} and "
                         f"{tuple(second.shape)}")
    width = min(len(first), nrow)
    n = min(len(first), rows * nrow) // width * width  # whole rows only, so each output sits under its input
    grid = torch.cat([torch.cat([first[i : i + width], second[i : i + width]]) for i in range(0, n, width)])
    return atomic_write(
        path, lambda tmp: save_image(grid, tmp, nrow=width, normalize=True, value_range=(-1, 1), format="png")
    )


def _frame_indices(steps: int) -> np.ndarray:
    """At most MAX_GIF_FRAMES evenly spaced time indices, always including the first and the last."""
    return np.unique(np.linspace(0, steps - 1, min(steps, MAX_GIF_FRAMES)).round().astype(int))


def _image_frames(path_tensor: Tensor, nrow: int) -> list[Image.Image]:
    from torchvision.utils import make_grid

    frames = []
    for t in _frame_indices(path_tensor.shape[0]):
        batch = _image_batch(path_tensor[t, : nrow * nrow], "path_tensor[t]")
        grid = make_grid(batch, nrow=nrow, normalize=True, value_range=(-1, 1))
        frames.append(Image.fromarray(grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()))
    return frames


def _scatter_frames(points: np.ndarray) -> list[Image.Image]:
    """One scatter per time step on fixed axes (the limits of the whole path), so frames do not jump.

    The axes are rendered once and each frame redraws only the cloud and the title (blitting).
    """
    last = points.shape[0] - 1
    lo, hi = points.reshape(-1, 2).min(0), points.reshape(-1, 2).max(0)
    pad = 0.05 * (hi - lo).max() + 1e-6
    fig = _new_figure(4, 4, dpi=80)
    ax = fig.add_subplot()
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    # A plain text in axes coordinates, not ax.set_title: the title is re-placed on every full draw.
    label = ax.text(0.5, 1.02, f"step {last} / {last}", transform=ax.transAxes, ha="center", va="bottom")
    cloud = ax.scatter(points[0, :, 0], points[0, :, 1], s=2, linewidths=0, color=COLOURS["generated"])
    fig.canvas.draw()
    fig.set_layout_engine("none")  # keep the layout found with the widest label
    cloud.set_visible(False)
    label.set_text("")
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    cloud.set_visible(True)
    frames = []
    for t in _frame_indices(points.shape[0]):
        fig.canvas.restore_region(background)
        cloud.set_offsets(points[t])
        label.set_text(f"step {t} / {last}")
        ax.draw_artist(cloud)
        ax.draw_artist(label)
        frames.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    return frames


def trajectory_gif(path: str | os.PathLike[str], path_tensor: ArrayLike, nrow: int = 8, fps: int = 8) -> Path:
    """An animated GIF of a sampled path, one frame per time step (at most MAX_GIF_FRAMES, evenly spaced).

    path_tensor: images (T, B, C, H, W) in [-1, 1], shown as grids of the first nrow² samples, or 2-D
    points (T, B, 2), shown as scatter plots.
    """
    shape = tuple(path_tensor.shape)
    if len(shape) not in (3, 5) or (len(shape) == 3 and shape[-1] != 2) or shape[0] == 0:
        raise ValueError(f"path_tensor: expected images (T, B, C, H, W) or points (T, B, 2), T >= 1, got {shape}")
    if len(shape) == 5:
        frames = _image_frames(torch.as_tensor(path_tensor), nrow)
    else:
        pts = path_tensor.detach().cpu().double().numpy() if isinstance(path_tensor, Tensor) else path_tensor
        frames = _scatter_frames(np.asarray(pts, dtype=np.float64))

    def write(tmp: str) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)

    return atomic_write(path, write)


def curves(
    path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]], keys: Sequence[str], *, x: str = "step"
) -> Path:
    """Line plots of metrics against `x` from a list of records (the lines of metrics.jsonl).

    One panel per key; a record without the key (or with a non-finite value) is skipped; the y axis is
    logarithmic when all of a key's values are positive.
    """
    if not keys:
        raise ValueError("keys: expected at least one metric name, got none")
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = _new_figure(4 * cols, 3 * rows)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        pairs = [
            (float(r[x]), float(r[key]))
            for r in records
            if x in r and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
        ]
        ax.set_title(key)
        ax.set_xlabel(x)
        if not pairs:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        xs, ys = zip(*pairs, strict=True)
        ax.plot(xs, ys, linewidth=1)
        if min(ys) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    return _save_figure(path, fig)


#: the curve pictures `run_curves` writes.
CURVE_FILES = ("train_curves.png", "eval_curves.png")
TRAIN_KEYS = ("loss", "grad_norm", "lr")
#: at most this many evaluation metrics get a curve panel (tables list all of them).
MAX_EVAL_CURVES = 12


def _numeric_keys(records: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """The keys with at least two numeric values (one point draws no line)."""
    def count(key: str) -> int:
        return sum(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in records)

    return [k for k in keys if count(k) >= 2]


def run_curves(records: list[dict[str, Any]], folder: Path) -> list[tuple[Path, str]]:
    """Training curves and evaluation-metric curves of a run's metric records, as
    [(picture, caption)]; a metric with fewer than two values gets no panel."""
    drawn = []
    train = _numeric_keys(records, list(TRAIN_KEYS))
    if train:
        drawn.append((curves(Path(folder) / CURVE_FILES[0], records, train), "training curves"))
    eval_keys = sorted({k for r in records for k in r if k.startswith("eval/") and not k.endswith(("/nfe", "/n"))})
    eval_keys = _numeric_keys(records, eval_keys)[:MAX_EVAL_CURVES]
    if eval_keys:
        drawn.append((curves(Path(folder) / CURVE_FILES[1], records, eval_keys), "evaluation metrics during training"))
    return drawn
