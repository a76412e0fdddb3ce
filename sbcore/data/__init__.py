"""Data sources: one distribution per side of the bridge, or a paired dataset."""

from sbcore.data.base import PairedSource, Source, TensorSource
from sbcore.data.gaussian import GaussianSource
from sbcore.data.toy2d import Toy2D

__all__ = ["GaussianSource", "PairedSource", "Source", "TensorSource", "Toy2D"]
