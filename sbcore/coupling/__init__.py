"""Couplings decide which (x_0, x_1) pairs a method trains on."""

from sbcore.coupling.base import Coupling, Pair
from sbcore.coupling.independent import IndependentCoupling, PairedCoupling
from sbcore.coupling.model import ModelCoupling
from sbcore.coupling.ot import ExactOTCoupling, SinkhornCoupling

__all__ = ["Coupling", "ExactOTCoupling", "IndependentCoupling", "ModelCoupling", "Pair", "PairedCoupling",
           "SinkhornCoupling"]
