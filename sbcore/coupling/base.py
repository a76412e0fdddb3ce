"""The `Coupling` interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

import attrs
from torch import Tensor


@attrs.frozen
class Pair:
    """A batch of endpoint pairs, x0 and x1 of shape (B, *D) with row i paired to row i."""

    x0: Tensor
    x1: Tensor


class Coupling(ABC):
    """Turns two marginal batches (or a paired batch) into training pairs."""

    #: True when the coupling needs the dataset's own pairing (x1 given row-aligned with x0).
    needs_pairs: bool = False

    @abstractmethod
    def __call__(self, x0: Tensor, x1: Tensor | None = None) -> Pair:
        """Return pairs built from the batches; x1 may be None for couplings that make it."""
