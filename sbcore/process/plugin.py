"""The core's reference processes, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from sbcore.hookspecs import hookimpl
from sbcore.process.brownian import BrownianBridge
from sbcore.process.scheduled import ScheduledBridge
from sbcore.process.spectral import SpectralProcess
from sbcore.process.vp import VPDiffusion
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("process", "brownian", BrownianBridge)
    registry.add("process", "scheduled", ScheduledBridge)
    registry.add("process", "vp", VPDiffusion)
    registry.add("process", "spectral", SpectralProcess)
