"""Hook implementations: the `sdsb` method, the `resmlp` and `uvit` networks and the `sdsb_chain` sampler."""

from __future__ import annotations

from sb_sdsb.chain import ChainSampler
from sb_sdsb.method import SDSB
from sb_sdsb.resmlp import ResMLP
from sb_sdsb.uvit import UViT
from sbcore import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "sdsb", SDSB)
    registry.add("network", "resmlp", ResMLP)
    registry.add("network", "uvit", UViT)
    registry.add("sampler", "sdsb_chain", ChainSampler)
