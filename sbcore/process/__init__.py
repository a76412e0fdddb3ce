"""Reference processes Q: how x_t is drawn between x_0 and x_1, the conditional drifts, and the
conversions between what a network predicts and the drift a sampler integrates."""

from sbcore.process.base import ENDS, PREDICTIONS, Direction, Prediction, ReferenceProcess, check_prediction, expand_t
from sbcore.process.brownian import BrownianBridge
from sbcore.process.scheduled import ScheduledBridge
from sbcore.process.spectral import SpectralProcess
from sbcore.process.vp import VPDiffusion

__all__ = ["ENDS", "PREDICTIONS", "BrownianBridge", "Direction", "Prediction", "ReferenceProcess",
           "ScheduledBridge", "SpectralProcess", "VPDiffusion", "check_prediction", "expand_t"]
