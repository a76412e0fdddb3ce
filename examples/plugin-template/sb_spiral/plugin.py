"""Hook implementations of the example plugin.

A plugin is any importable module whose functions are marked with `sbcore.hookimpl` and named
after the specs in `sbcore.hookspecs`. This one adds a data source, a network, a reference process and a method.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sb_spiral.method import PowerTime
from sb_spiral.network import GatedMLP
from sb_spiral.process import QuadraticBridge
from sbcore import hookimpl
from sbcore.data.base import Source


class Spiral(Source):
    """A noisy Archimedean spiral: r = theta / (turns * 2 pi), theta ~ U[0, turns * 2 pi]."""

    def __init__(self, turns: float = 2.0, noise: float = 0.05) -> None:
        if turns <= 0:
            raise ValueError(f"turns must be > 0, got {turns}")
        self.turns = turns
        self.noise = noise
        self.shape = (2,)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        theta = torch.rand(n, generator=generator) * self.turns * 2 * math.pi
        r = theta / (self.turns * 2 * math.pi)
        x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
        return x + self.noise * torch.randn(n, 2, generator=generator)


@hookimpl
def sbcore_register(registry) -> None:
    registry.add("dataset", "spiral", Spiral)
    registry.add("network", "gated_mlp", GatedMLP)
    registry.add("process", "quadratic", QuadraticBridge)
    registry.add("method", "power_time", PowerTime)
