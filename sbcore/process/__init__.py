"""Reference processes Q: how x_t is drawn between x_0 and x_1, and the conditional drifts."""

from sbcore.process.base import Direction, ReferenceProcess, expand_t
from sbcore.process.brownian import BrownianBridge

__all__ = ["BrownianBridge", "Direction", "ReferenceProcess", "expand_t"]
