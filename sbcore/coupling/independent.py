"""The two couplings that keep the data's own pairing: independent marginals, or given pairs."""

from __future__ import annotations

from torch import Tensor

from sbcore.coupling.base import Coupling, Pair


def check_batches(owner: str, x0: Tensor, x1: Tensor | None) -> Tensor:
    """Return x1 after checking that it is given and has x0's batch size (errors name `owner`)."""
    if x1 is None:
        raise ValueError(f"{owner} needs an x1 batch, got x1=None")
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(f"{owner}: x0 and x1 batch sizes differ ({x0.shape[0]} vs {x1.shape[0]})")
    return x1


class IndependentCoupling(Coupling):
    """pi_0 (x) pi_1: two independently drawn batches paired row by row.

    The starting coupling of bridge / flow matching and of DSBM-IMF (Shi et al. 2023, Sec. 4).
    """

    def __call__(self, x0: Tensor, x1: Tensor | None = None) -> Pair:
        return Pair(x0, check_batches("IndependentCoupling", x0, x1))

    def __repr__(self) -> str:
        return "IndependentCoupling()"


class PairedCoupling(Coupling):
    """The dataset's own pairs (x0[i], x1[i]), as in I²SB or paired image translation."""

    needs_pairs = True

    def __call__(self, x0: Tensor, x1: Tensor | None = None) -> Pair:
        if x1 is None:
            raise ValueError(
                "PairedCoupling needs the dataset's paired x1 batch (use a paired data source), got x1=None"
            )
        return Pair(x0, check_batches("PairedCoupling", x0, x1))

    def __repr__(self) -> str:
        return "PairedCoupling()"
