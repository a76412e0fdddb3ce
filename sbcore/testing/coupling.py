"""The `Coupling` conformance suite: a Pair like the inputs, rows taken from the given batches."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sbcore.coupling.base import Coupling, Pair
from sbcore.registry import Registry
from sbcore.testing.suite import Suite, conformance


def row_matches(out: Tensor, given: Tensor) -> Tensor:
    """For each row of `out` (B, *D), the indices of equal rows of `given` as a (B, n) boolean mask."""
    return (out.flatten(1)[:, None, :] == given.flatten(1)[None, :, :]).all(-1)


class CouplingSuite(Suite):
    """A coupling is built as cls(**params) and called as coupling(x0, x1).

    keeps: the sides whose output rows must be rows of the given batch (a permutation or a subset with
        repeats); a coupling that makes one side (a reference or model coupling) keeps only the other.
    shapes: data shapes it must handle (flattened vectors and images alike).
    """

    kind = "coupling"
    base = Coupling

    def __init__(self, component: str | type, params: dict[str, Any] | None = None, *,
                 keeps: tuple[str, ...] = ("x0", "x1"), shapes: tuple[tuple[int, ...], ...] = ((3,), (1, 2, 2)),
                 batch: int = 12, registry: Registry | None = None) -> None:
        super().__init__(component, params, registry=registry)
        self.keeps, self.shapes, self.size = tuple(keeps), tuple(tuple(s) for s in shapes), batch

    def build(self) -> Coupling:
        return self.construct()

    def batches(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        x0 = torch.randn(self.size, *shape, generator=g, dtype=torch.float64)
        x1 = 1 + torch.randn(self.size, *shape, generator=g, dtype=torch.float64)
        return x0.to(dtype), x1.to(dtype)

    def pair(self, coupling: Coupling, x0: Tensor, x1: Tensor | None, seed: int = 0) -> Pair:
        torch.manual_seed(seed)
        return coupling(x0, x1)

    # ---- checks ------------------------------------------------------------------------------

    def check_build(self) -> None:
        coupling = self.build()
        self.expect(isinstance(coupling.needs_pairs, bool), f"needs_pairs must be a bool, got {coupling.needs_pairs}")
        self.expect(isinstance(repr(coupling), str), "repr failed")

    def check_pair_like_inputs(self) -> None:
        """A Pair whose sides have the inputs' shapes and dtypes."""
        coupling = self.build()
        for shape in self.shapes:
            for dtype in (torch.float32, torch.float64):
                x0, x1 = self.batches(shape, dtype)
                out = self.pair(coupling, x0, x1)
                self.expect(isinstance(out, Pair), f"returned {type(out).__name__}, not a Pair")
                for side, given in (("x0", x0), ("x1", x1)):
                    got = getattr(out, side)
                    self.expect(got.shape == given.shape and got.dtype == dtype,
                                f"{side}: {tuple(got.shape)} {got.dtype} for {tuple(given.shape)} {dtype} inputs")

    def check_rows_from_inputs(self) -> None:
        """Kept sides are made of the given rows; paired data (needs_pairs) keeps its pairs."""
        coupling = self.build()
        for shape in self.shapes:
            x0, x1 = self.batches(shape)
            out = self.pair(coupling, x0, x1)
            masks = {}
            for side in self.keeps:
                masks[side] = row_matches(getattr(out, side), x0 if side == "x0" else x1)
                found = masks[side].any(1)
                self.expect(bool(found.all()), f"{side} rows {(~found).nonzero().flatten().tolist()} are not rows of "
                            f"the given {side} batch")
            if coupling.needs_pairs and len(masks) == 2:
                together = (masks["x0"] & masks["x1"]).any(1)
                self.expect(bool(together.all()), f"rows {(~together).nonzero().flatten().tolist()} break the "
                            "dataset's pairs")

    def check_seeded(self) -> None:
        coupling = self.build()
        x0, x1 = self.batches(self.shapes[0])
        a, b = self.pair(coupling, x0, x1, seed=3), self.pair(coupling, x0, x1, seed=3)
        self.expect(torch.equal(a.x0, b.x0) and torch.equal(a.x1, b.x1), "pairs differ under the same seed")

    def check_missing_x1(self) -> None:
        """A coupling that keeps x1 rows needs an x1 batch: without one it raises a one-line ValueError."""
        if "x1" not in self.keeps:
            return
        coupling = self.build()
        x0, _ = self.batches(self.shapes[0])
        try:
            self.pair(coupling, x0, None)
        except ValueError as exc:
            self.expect("\n" not in str(exc), f"the error spans lines: {exc}")
            return
        self.expect(False, "x1=None was accepted")


def coupling_conformance(component: str | type, params: dict[str, Any] | None = None, **options: Any):
    """A pytest test running the coupling suite: ``test_ref = coupling_conformance("reference", keeps=("x0",))``."""
    return conformance(CouplingSuite(component, params, **options))
