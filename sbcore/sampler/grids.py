"""Time grids a sampler walks: uniform in t, or respaced onto a subset of discrete training times.

`space_indices(n, count)` picks `count` evenly spaced integers from 0..n-1 with Python's `round`
(round half to even), exactly as I2SB's `space_indices` and guided-diffusion's `space_timesteps`
(a single section) do: space_indices(1000, 5) = [0, 250, 500, 749, 999].

``logsnr`` spaces the times uniformly in the process's log signal-to-noise ratio lambda(t) = log(a(t)/b(t))
(the ratio of the data and noise coefficients of x_t = a x_0 + b x_1), DPM-Solver's choice for few steps
(Lu et al. 2022, "DPM-Solver", Sec. 3.4 and App. D); an end where lambda is infinite (b(0) = 0 on the
continuous VP path) is kept, and the interior spaced from lambda 1e-3 away from it.

A grid may also be a timestep-respacing string with guided-diffusion's meaning (`space_timesteps`,
Nichol & Dhariwal 2021, respace.py): ``"ddimN"`` keeps range(0, n, k) for the stride k that gives exactly
N times, and ``"a,b,c"`` splits 0..n-1 into as many equal sections (the first n mod sections one longer)
and spreads a, b, c times evenly over each. The string fixes the times, hence the sampler's steps.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction

GRIDS = ("uniform", "respaced", "logsnr")
#: a grid kind, or a respacing string ("ddim50", "10,20,30")
Grid = Literal["uniform", "respaced", "logsnr"] | str
#: resolution of the table that inverts lambda(t) for a logsnr grid.
LOGSNR_TABLE = 100_001


def logsnr_times(process: ReferenceProcess, steps: int) -> Tensor:
    """`steps + 1` increasing times from 0 to 1, uniform in lambda(t) = log(a/b) (float64, see the module)."""
    t = torch.linspace(0.0, 1.0, LOGSNR_TABLE, dtype=torch.float64)
    a, b, _ = process.coefficients(t)
    lam = a.log() - b.log()
    if not bool((lam.diff() < 0).all()):
        raise ValueError(f"grid logsnr needs a log-SNR log(a/b) that falls from t = 0 to 1; {process!r} has none")
    margin = round(1e-3 * (LOGSNR_TABLE - 1))
    hi = lam[0] if torch.isfinite(lam[0]) else lam[margin]
    lo = lam[-1] if torch.isfinite(lam[-1]) else lam[-1 - margin]
    targets = torch.linspace(float(hi), float(lo), steps + 1, dtype=torch.float64)
    # invert the falling table by linear interpolation between its neighbours
    descending = -lam.clamp(float(lo), float(hi))
    k = torch.searchsorted(descending, -targets).clamp(1, LOGSNR_TABLE - 1)
    l0, l1 = descending[k - 1], descending[k]
    weight = torch.where(l1 > l0, (-targets - l0) / (l1 - l0), torch.zeros_like(l0))
    times = t[k - 1] + weight * (t[k] - t[k - 1])
    times[0], times[-1] = 0.0, 1.0
    return times


def space_indices(n: int, count: int) -> list[int]:
    """`count` indices spread evenly over 0..n-1, first and last included (count >= 2)."""
    if not 2 <= count <= n:
        raise ValueError(f"need 2 <= count <= n, got count={count}, n={n}")
    stride = (n - 1) / (count - 1)
    # the stride is accumulated, not multiplied: the references do so, and where i * stride falls on
    # .5 the two differ (n = 1000, count = 21: index 500 instead of 499)
    indices, position = [], 0.0
    for _ in range(count):
        indices.append(round(position))
        position += stride
    return indices


def _sections(spec: str) -> list[int]:
    try:
        counts = [int(part) for part in spec.split(",")]
    except ValueError:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, 'ddimN' or comma-separated section counts "
                         f"like '10,15,20', got {spec!r}") from None
    if any(c < 0 for c in counts):
        raise ValueError(f"grid {spec!r}: section counts must be >= 0")
    return counts


def respacing_count(spec: str) -> int:
    """How many times a respacing string keeps (it cannot know more before the number of training times)."""
    if spec.startswith("ddim"):
        try:
            return int(spec[len("ddim"):])
        except ValueError:
            raise ValueError(f"grid {spec!r}: expected 'ddimN' with an integer N") from None
    return sum(_sections(spec))


def space_timesteps(n: int, spec: str) -> list[int]:
    """The training indices (sorted) that the respacing string `spec` keeps out of 0..n-1 (see the module)."""
    if spec.startswith("ddim"):
        count = respacing_count(spec)
        for stride in range(1, n):
            if len(range(0, n, stride)) == count:
                return list(range(0, n, stride))
        raise ValueError(f"grid {spec!r}: no integer stride takes exactly {count} of {n} training times")
    counts = _sections(spec)
    size, extra = divmod(n, len(counts))
    kept, start = set(), 0
    for i, count in enumerate(counts):
        section = size + (1 if i < extra else 0)
        if section < count:
            raise ValueError(f"grid {spec!r}: section {i} has {section} training times, cannot take {count}")
        stride = 1 if count <= 1 else (section - 1) / (count - 1)
        position = 0.0
        for _ in range(count):  # accumulated like the reference (see space_indices)
            kept.add(start + round(position))
            position += stride
        start += section
    return sorted(kept)


def time_grid(kind: str, steps: int, direction: Direction, grid_size: int | None = None,
              process: ReferenceProcess | None = None, **like: Any) -> Tensor:
    """`steps + 1` times from the start of `direction` to its end.

    respaced: the times k / (grid_size - 1) of `space_indices(grid_size, steps + 1)`; a respacing string:
    those of `space_timesteps(grid_size, kind)`, which must be `steps + 1` times; logsnr: `logsnr_times`.
    """
    check_direction(direction)
    if kind == "uniform":
        grid = torch.linspace(0.0, 1.0, steps + 1, **like)
    elif kind == "logsnr":
        if process is None:
            raise ValueError("a logsnr grid needs the process (its log signal-to-noise ratio)")
        grid = logsnr_times(process, steps).to(**like)
    else:
        if grid_size is None:
            raise ValueError(f"grid {kind!r} needs grid_size (the number of discrete training times)")
        if kind == "respaced":
            indices = space_indices(grid_size, steps + 1)
        else:
            indices = space_timesteps(grid_size, kind)
            if len(indices) != steps + 1:
                raise ValueError(f"grid {kind!r} keeps {len(indices)} of {grid_size} training times, so it walks "
                                 f"{len(indices) - 1} steps, not {steps}: a respacing string fixes the steps")
        grid = torch.tensor(indices, **like) / (grid_size - 1)
    return grid if direction == "forward" else grid.flip(0)
