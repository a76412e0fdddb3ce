"""Minibatch optimal-transport couplings (exact and entropic), solved by POT.

Within a batch of n samples from each side, with uniform weights 1/n, a plan pi (n x n) is
computed for the squared-Euclidean cost on flattened samples, and each x0[i] is paired with an
x1[j] drawn from the row pi(i, .) / pi(i). This is minibatch OT (Fatras et al. 2020) as used by
OT-CFM and SB-CFM (Tong et al. 2024) and multisample flow matching (Pooladian et al. 2023).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.coupling.base import Coupling, Pair


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """C[i, j] = ||x0[i] - x1[j]||^2 over flattened samples, on the inputs' device."""
    import ot  # imported on use: keeps `sbcore --help` fast

    a, b = x0.flatten(1), x1.flatten(1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"OT needs samples of the same size on both sides, got {a.shape[1]} and {b.shape[1]} values")
    return ot.dist(a, b, metric="sqeuclidean")


def uniform(n: int, like: Tensor) -> Tensor:
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


def sample_rows(plan: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each row i draw a column j with probability plan[i, j] / sum_j plan[i, j].

    Inverse-CDF sampling: one uniform per row, drawn on the generator's own device (so a CPU
    generator serves a CUDA plan and the stream does not depend on where the plan lives); only
    these n numbers move, never the plan. Columns of zero mass are never chosen.
    """
    device = generator.device if generator is not None else plan.device
    u = torch.rand(plan.shape[0], 1, generator=generator, device=device, dtype=torch.float64)
    cdf = plan.cumsum(dim=1)
    target = u.to(device=plan.device, dtype=plan.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_(max=plan.shape[1] - 1)


class ExactOTCoupling(Coupling):
    """Minibatch exact OT by POT's network simplex (`ot.emd`).

    With equal batch sizes the optimal plan is a vertex of the Birkhoff polytope, i.e. a
    permutation / n, so x1 is simply reordered (no randomness). With unequal sizes the plan is
    fractional and x1 rows are drawn from it with `generator`. The network simplex runs on the
    CPU (POT copies the cost matrix there); use `SinkhornCoupling` to stay on the device.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def __repr__(self) -> str:
        return "ExactOTCoupling()"

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The (n0, n1) optimal plan with uniform marginals, on x0's device and dtype."""
        import ot

        cost = squared_distances(x0, x1)
        return ot.emd(uniform(cost.shape[0], cost), uniform(cost.shape[1], cost), cost)

    def __call__(self, x0: Tensor, x1: Tensor | None = None, *, generator: torch.Generator | None = None) -> Pair:
        if x1 is None:
            raise ValueError("ExactOTCoupling needs an x1 batch, got x1=None")
        pi = self.plan(x0, x1)
        if x0.shape[0] == x1.shape[0]:
            return Pair(x0, x1[pi.argmax(dim=1)])
        return Pair(x0, x1[sample_rows(pi, generator or self.generator)])


class SinkhornCoupling(Coupling):
    """Minibatch entropic OT: pi = argmin <pi, C> + reg * sum pi log pi (Cuturi 2013).

    Solved by POT's log-domain Sinkhorn (`method="sinkhorn_log"`), stable for small `reg`, on
    the batch's own tensors, so on a GPU the plan never leaves the device.

    Schrödinger-bridge coupling: for the reference dX = sigma dW the static SB is entropic OT with
    cost 1/2 ||x - y||^2 and regulariser sigma^2; multiplying by 2 gives cost ||x - y||^2 with
    reg = 2 sigma^2, the choice of SB-CFM / [SF]²M (Tong et al. 2024).

    normalize_cost: divide C by its batch maximum, making `reg` relative to the batch's spread
        (no longer the SB value 2 sigma^2).
    max_iter: Sinkhorn iterations at most; small `reg` relative to the cost needs many (SB-CFM at d=50,
        reg 2, batch 128: median 280, 99th percentile ~2000), and POT warns when they run out.
    tol: stop when the L2 violation of the column marginal is below tol (POT's `stopThr`).
    generator: draws the pairing from the plan; pass one (here or per call) for reproducibility.
    """

    def __init__(
        self,
        reg: float = 0.05,
        normalize_cost: bool = False,
        max_iter: int = 10_000,
        tol: float = 1e-6,
        generator: torch.Generator | None = None,
    ) -> None:
        if reg <= 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.reg = float(reg)
        self.normalize_cost = normalize_cost
        self.max_iter = max_iter
        self.tol = float(tol)
        self.generator = generator

    def __repr__(self) -> str:
        return (
            f"SinkhornCoupling(reg={self.reg}, normalize_cost={self.normalize_cost}, "
            f"max_iter={self.max_iter}, tol={self.tol})"
        )

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The (n0, n1) entropic plan with uniform marginals, on x0's device and dtype."""
        cost = squared_distances(x0, x1)
        if self.normalize_cost:
            cost = cost / cost.max().clamp_min(torch.finfo(cost.dtype).tiny)
        import ot

        a, b = uniform(cost.shape[0], cost), uniform(cost.shape[1], cost)
        return ot.sinkhorn(a, b, cost, self.reg, method="sinkhorn_log", numItermax=self.max_iter, stopThr=self.tol)

    def __call__(self, x0: Tensor, x1: Tensor | None = None, *, generator: torch.Generator | None = None) -> Pair:
        if x1 is None:
            raise ValueError("SinkhornCoupling needs an x1 batch, got x1=None")
        return Pair(x0, x1[sample_rows(self.plan(x0, x1), generator or self.generator)])
