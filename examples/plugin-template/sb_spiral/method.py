"""A method: bridge matching whose training times concentrate where the reference is noisy."""

from __future__ import annotations

import attrs
from attrs import validators as v
from torch import Tensor

from sbcore.train.bridge_matching import BMConfig, BridgeMatching


@attrs.frozen
class PowerTimeConfig(BMConfig):
    """The `method:` section: `bm`'s keys plus `t_power`, t = u^(1 / t_power) with u ~ U(eps, 1 - eps)
    (t_power > 1 puts more training times near t = 1)."""

    t_power: float = attrs.field(default=2.0, validator=v.gt(0.0))


class PowerTime(BridgeMatching):
    """`bm` with times drawn from the density t_power * t^(t_power - 1)."""

    Config = PowerTimeConfig
    #: the config `sbcore config plugin=spiral` prints: sb_spiral/examples/spiral.yaml (package data).
    default_example = "spiral.yaml"

    def sample_t(self, n: int) -> Tensor:
        return super().sample_t(n) ** (1 / self.method.t_power)
