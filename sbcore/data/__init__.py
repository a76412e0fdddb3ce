"""Data sources: one distribution per side of the bridge, or a paired dataset."""

from sbcore.data.base import PairedSource, Source, TensorSource

__all__ = ["PairedSource", "Source", "TensorSource"]
