"""Hook implementations: the `dsbm` method and the `bench` command."""

from __future__ import annotations

import argparse

from sb_dsbm.bench import add_command
from sb_dsbm.method import DSBM
from sbcore import hookimpl
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("method", "dsbm", DSBM)


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    if "bench" not in subparsers.choices:  # another plugin may own a `bench` command already
        add_command(subparsers)
