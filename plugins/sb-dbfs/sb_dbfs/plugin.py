"""Hook implementations: the `dbfs` method, the operator transformer, the Gaussian-process source and
`sbcore sample ... resolution=N`."""

from __future__ import annotations

from typing import Any

from sb_dbfs.data import GaussianProcessSource
from sb_dbfs.method import DBFS
from sb_dbfs.network import OperatorTransformer
from sbcore import hookimpl
from sbcore.options import positive
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "dbfs", DBFS)
    registry.add("network", "operator_transformer", OperatorTransformer)
    registry.add("dataset", "gp", GaussianProcessSource)


@hookimpl
def sbcore_sample_options(run: Any) -> dict[str, tuple[type, str]] | None:
    if run.config.plugin != "dbfs":
        return None
    return {"resolution": (int, "grid size to sample on: the start functions are resized to it (DBFS transfer)",
                           positive)}
