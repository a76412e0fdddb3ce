"""A network: an MLP whose hidden layer is gated by the time embedding (FiLM-style)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import time_embedding


class GatedMLP(Network):
    """f(x, t) = W2 (silu(W1 x) * sigmoid(G e(t))) on flat data of any shape.

    The base class records the constructor arguments (`hparams`), so a checkpoint rebuilds it; every
    argument must change the network (the conformance suite checks it).
    """

    def __init__(self, shape: tuple[int, ...], hidden: int = 64, time_dim: int = 16) -> None:
        super().__init__()
        self.shape = tuple(shape)
        dim = int(torch.tensor(self.shape).prod())
        self.embed, embed_dim = time_embedding("sinusoidal", time_dim)
        self.inp, self.gate, self.out = nn.Linear(dim, hidden), nn.Linear(embed_dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:  # no **cond: conditioning inputs raise TypeError
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},) or be a scalar, got {tuple(t.shape)}")
        h = torch.nn.functional.silu(self.inp(x.flatten(1))) * torch.sigmoid(self.gate(self.embed(t).to(x)))
        return self.out(h).view_as(x)
