"""The core's method `bm` (bridge matching), registered through the same hook as any third-party plugin."""

from __future__ import annotations

from sbcore.hookspecs import hookimpl
from sbcore.registry import Registry
from sbcore.train.bridge_matching import BridgeMatching


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "bm", BridgeMatching)
