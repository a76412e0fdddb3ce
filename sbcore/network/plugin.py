"""The core's networks, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from sbcore.hookspecs import hookimpl
from sbcore.network.adm import ADMClassifier, ADMUNet
from sbcore.network.diffusers_unet import DiffusersUNet
from sbcore.network.mlp import MLP
from sbcore.network.unet import UNet
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("network", "mlp", MLP)
    registry.add("network", "unet", UNet)
    registry.add("network", "diffusers_unet", DiffusersUNet)
    registry.add("network", "adm_unet", ADMUNet)
    registry.add("classifier", "adm_classifier", ADMClassifier)
