"""The core's samplers, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from sbcore.hookspecs import hookimpl
from sbcore.registry import Registry
from sbcore.sampler.ddim import DDIM, DDIMHeun
from sbcore.sampler.exponential import ExponentialIntegrator
from sbcore.sampler.integrators import EulerMaruyama, EulerODE, HeunODE


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("sampler", "euler_maruyama", EulerMaruyama)
    registry.add("sampler", "euler", EulerODE)
    registry.add("sampler", "heun", HeunODE)
    registry.add("sampler", "ddim", DDIM)
    registry.add("sampler", "ddim_heun", DDIMHeun)
    registry.add("sampler", "exponential", ExponentialIntegrator)
