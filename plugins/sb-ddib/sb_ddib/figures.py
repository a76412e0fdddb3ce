"""DDIB's paper-style 2-D figure: source, latent and translated points, each point keeping one colour
(Su et al. 2023, Fig. 2, where colour shows which source point went where)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from sbcore.io.files import atomic_write


def translation_figure(path: str | os.PathLike[str], source: Tensor, latent: Tensor, target: Tensor,
                       cycle: Tensor | None = None) -> Path:
    """Panels source | latent | target (| cycle), coloured by the rank of each source point's first coordinate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = {"source": source, "latent": latent, "target": target}
    if cycle is not None:
        panels["cycle (source -> target -> source)"] = cycle
    points = {k: v.detach().cpu().double().numpy()[:, :2] for k, v in panels.items()}
    colour = np.argsort(np.argsort(points["source"][:, 0])) / max(len(source) - 1, 1)
    fig = Figure(figsize=(3.2 * len(points), 3.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (title, pts) in zip(fig.subplots(1, len(points)), points.items(), strict=True):
        ax.scatter(pts[:, 0], pts[:, 1], c=colour, cmap="rainbow", s=3, linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=fig.dpi))
