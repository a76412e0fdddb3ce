"""Hook implementations: the `dsbm` method and the `gaussian` suite of `sbcore bench`."""

from __future__ import annotations

from sb_dsbm.bench import bench_gaussian
from sb_dsbm.method import DSBM
from sbcore import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "dsbm", DSBM)
    registry.add("bench", "gaussian", bench_gaussian)
