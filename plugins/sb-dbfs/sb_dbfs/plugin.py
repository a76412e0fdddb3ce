"""Hook implementations: the operator-transformer network and the Gaussian-process data source."""

from __future__ import annotations

from sb_dbfs.data import GaussianProcessSource
from sb_dbfs.network import OperatorTransformer
from sbcore import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("network", "operator_transformer", OperatorTransformer)
    registry.add("dataset", "gp", GaussianProcessSource)
