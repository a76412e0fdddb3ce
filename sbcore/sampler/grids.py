"""Time grids a sampler walks: uniform in t, or respaced onto a subset of discrete training times.

`space_indices(n, count)` picks `count` evenly spaced integers from 0..n-1 with Python's `round`
(round half to even), exactly as I2SB's `space_indices` and guided-diffusion's `space_timesteps`
(a single section) do: space_indices(1000, 5) = [0, 250, 500, 749, 999].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sbcore.process.base import Direction, check_direction

GRIDS = ("uniform", "respaced")


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


def time_grid(kind: str, steps: int, direction: Direction, grid_size: int | None = None, **like: Any) -> Tensor:
    """`steps + 1` times from the start of `direction` to its end.

    respaced: the times k / (grid_size - 1) of `space_indices(grid_size, steps + 1)`.
    """
    check_direction(direction)
    if kind == "uniform":
        grid = torch.linspace(0.0, 1.0, steps + 1, **like)
    elif kind == "respaced":
        if grid_size is None:
            raise ValueError("a respaced grid needs grid_size (the number of discrete training times)")
        grid = torch.tensor(space_indices(grid_size, steps + 1), **like) / (grid_size - 1)
    else:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {kind!r}")
    return grid if direction == "forward" else grid.flip(0)
