"""Hook implementations: the `i2sb` method, process and sampler, the `corruption` component kind and
`sbcore sample ... ot_ode=true|false`."""

from __future__ import annotations

from typing import Any

from sb_i2sb.corruption import OPERATORS
from sb_i2sb.method import I2SB
from sb_i2sb.process import I2SBBridge
from sb_i2sb.sampler import I2SBPosterior
from sbcore import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add_kind("corruption", "a degradation operator making (clean, degraded) pairs (sb_i2sb.corruption)")
    registry.add("method", "i2sb", I2SB)
    registry.add("process", "i2sb", I2SBBridge)
    registry.add("sampler", "i2sb", I2SBPosterior)
    for name, operator in OPERATORS.items():
        registry.add("corruption", name, operator)


@hookimpl
def sbcore_sample_options(run: Any) -> dict[str, tuple[type, str]] | None:
    if run.config.plugin != "i2sb":
        return None
    return {"ot_ode": (bool, "sample with the deterministic OT-ODE chain (true) or the stochastic one (false), "
                             "whichever the run trained with")}
