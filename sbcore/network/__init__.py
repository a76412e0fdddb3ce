"""Networks predict a drift / endpoint / noise from (x_t, t)."""

from sbcore.network.base import Network, build_network

__all__ = ["Network", "build_network"]
