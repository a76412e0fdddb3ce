"""The core's own components, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from sbcore.coupling.independent import IndependentCoupling, PairedCoupling
from sbcore.coupling.ot import ExactOTCoupling, SinkhornCoupling
from sbcore.data.gaussian import GaussianSource
from sbcore.data.toy2d import Toy2D
from sbcore.hookspecs import hookimpl
from sbcore.network.mlp import MLP
from sbcore.network.unet import UNet
from sbcore.process.brownian import BrownianBridge
from sbcore.process.scheduled import ScheduledBridge
from sbcore.process.spectral import SpectralProcess
from sbcore.process.vp import VPDiffusion
from sbcore.registry import Registry
from sbcore.sampler.ddim import DDIM, DDIMHeun
from sbcore.sampler.exponential import ExponentialIntegrator
from sbcore.sampler.integrators import EulerMaruyama, EulerODE, HeunODE
from sbcore.train.bridge_matching import BridgeMatching


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "bm", BridgeMatching)
    registry.add("process", "brownian", BrownianBridge)
    registry.add("process", "scheduled", ScheduledBridge)
    registry.add("process", "vp", VPDiffusion)
    registry.add("process", "spectral", SpectralProcess)
    registry.add("coupling", "independent", IndependentCoupling)
    registry.add("coupling", "paired", PairedCoupling)
    registry.add("coupling", "exact_ot", ExactOTCoupling)
    registry.add("coupling", "sinkhorn", SinkhornCoupling)
    registry.add("network", "mlp", MLP)
    registry.add("network", "unet", UNet)
    registry.add("sampler", "euler_maruyama", EulerMaruyama)
    registry.add("sampler", "euler", EulerODE)
    registry.add("sampler", "heun", HeunODE)
    registry.add("sampler", "ddim", DDIM)
    registry.add("sampler", "ddim_heun", DDIMHeun)
    registry.add("sampler", "exponential", ExponentialIntegrator)
    registry.add("dataset", "gaussian", GaussianSource)
    registry.add("dataset", "toy2d", Toy2D)
