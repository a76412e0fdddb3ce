"""The `sbcore bench SUITE` command and the core's `images` suite; plugins add suites by registering a
`bench` component (sb-dsbm's `gaussian`)."""

from __future__ import annotations

import argparse

from sbcore import hookimpl
from sbcore.registry import Registry

USAGE = "sbcore bench SUITE key=value ...  (suites: `sbcore plugins` lists the registered `bench` components)"


def _images(items: list[str]) -> int:
    from sbcore.bench.images import bench_images  # torch-heavy imports only when the suite runs

    return bench_images(items)


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("bench", "images", _images)


def cmd_bench(args: argparse.Namespace) -> int:
    from sbcore.plugins import get_plugins

    suite = get_plugins().registry.get("bench", args.suite)
    return suite(args.items)


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help=f"train, evaluate and tabulate a benchmark: {USAGE}",
                                   description=USAGE)
    parser.add_argument("suite", help="the benchmark suite, e.g. images (core) or gaussian (sb-dsbm)")
    parser.add_argument("items", nargs="*", help="the suite's key=value options")
    parser.set_defaults(handler=cmd_bench)
