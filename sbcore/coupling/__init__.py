"""Couplings decide which (x_0, x_1) pairs a method trains on."""

from sbcore.coupling.base import Coupling, Pair

__all__ = ["Coupling", "Pair"]
