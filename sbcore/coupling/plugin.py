"""The core's couplings, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from sbcore.coupling.independent import IndependentCoupling, PairedCoupling
from sbcore.coupling.ot import ExactOTCoupling, SinkhornCoupling
from sbcore.hookspecs import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("coupling", "independent", IndependentCoupling)
    registry.add("coupling", "paired", PairedCoupling)
    registry.add("coupling", "exact_ot", ExactOTCoupling)
    registry.add("coupling", "sinkhorn", SinkhornCoupling)
