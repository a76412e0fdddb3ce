"""Networks predict a drift / endpoint / noise from (x_t, t)."""

from sbcore.network.base import Network, build_network
from sbcore.network.mlp import MLP
from sbcore.network.unet import UNet

__all__ = ["MLP", "Network", "UNet", "build_network"]
