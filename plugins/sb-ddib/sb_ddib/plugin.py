"""Hook implementations: the `ddib` method, its residual MLP, the `noise` latent source and `sbcore translate`."""

from __future__ import annotations

import argparse

from sb_ddib.method import DDIB, Noise
from sb_ddib.network import ResidualMLP
from sb_ddib.translate import add_command
from sbcore import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "ddib", DDIB)
    registry.add("network", "residual_mlp", ResidualMLP)
    registry.add("dataset", "noise", Noise)


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    add_command(subparsers)
