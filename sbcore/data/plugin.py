"""The data layer's built-in plugin: dataset sources, and the ``sbcore shards`` and ``sbcore data fetch`` commands."""

from __future__ import annotations

import argparse
from typing import Any, Literal

import attrs

from sbcore.config import DataSource, error_lines, make_converter
from sbcore.config_text import ConfigError
from sbcore.data.arrays import ArraysSource
from sbcore.data.gaussian import GaussianSource
from sbcore.data.image_folder import ImageFolderSource
from sbcore.data.images import _FILES, MNIST, EMNISTLetters, FashionMNIST
from sbcore.data.latent import DiffusersVAE
from sbcore.data.memory import ShapeOnly, describe
from sbcore.data.shards import ShardSource, index_path, write_shards
from sbcore.data.toy2d import Toy2D
from sbcore.errors import UserError
from sbcore.hookspecs import hookimpl
from sbcore.options import option, parse_options, positive
from sbcore.registry import Registry

SHARDS_USAGE = ("sbcore shards write data.source=NAME [data.KEY=VALUE ...] out=DIR/NAME-%06d.tar "
                "[maxcount=10000] [block=256] [format=npy|png] [shuffle=true] [seed=0] [count=N]")


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("dataset", "gaussian", GaussianSource)
    registry.add("dataset", "toy2d", Toy2D)
    registry.add("dataset", "mnist", MNIST)
    registry.add("dataset", "fashion_mnist", FashionMNIST)
    registry.add("dataset", "emnist_letters", EMNISTLetters)
    registry.add("dataset", "arrays", ArraysSource)
    registry.add("dataset", "image_folder", ImageFolderSource)
    registry.add("dataset", "shards", ShardSource)
    registry.add("latent", "diffusers_vae", DiffusersVAE)
    registry.add("dataset", "shape_only", ShapeOnly)


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    _escaped = SHARDS_USAGE.replace("%", "%%")  # argparse %-formats help (not descriptions)
    parser = subparsers.add_parser("shards", help=f"write webdataset shards: {_escaped}",
                                   description=f"usage: {SHARDS_USAGE}")
    parser.add_argument("action", choices=["write"])
    parser.add_argument("items", nargs="*", help="data.source=NAME, data.<param>=VALUE and write options")
    parser.set_defaults(handler=cmd_shards)
    from sbcore.data.fetch import USAGE, FetchOptions
    from sbcore.options import help_text

    parser = subparsers.add_parser("data", help=f"fetch a standard dataset into $SBCORE_DATA_DIR: {USAGE}",
                                   description=f"usage: {USAGE}", epilog=help_text(FetchOptions),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch"])
    parser.add_argument("dataset", choices=sorted(_FILES))
    parser.add_argument("items", nargs="*", help="dir=FOLDER force=true")
    parser.set_defaults(handler=cmd_data, options=FetchOptions)


def cmd_data(args: argparse.Namespace) -> int:
    from sbcore.data.fetch import fetch_command

    return fetch_command(args.dataset, args.items)


def _pattern(_: Any, attribute: Any, value: str) -> None:
    try:
        ok = value % 0 != value % 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"expected a printf pattern with a shard number such as shards/mnist-%06d.tar, got {value!r}")


@attrs.frozen(kw_only=True)
class ShardsWriteOptions:
    data: dict[str, Any] = option(help="the data source: data.source=NAME and its data.KEY=VALUE parameters")
    out: str = option(help="printf pattern of the shard files, e.g. shards/mnist-%06d.tar", validator=_pattern)
    maxcount: int = option(10_000, help="samples per shard", validator=positive)
    block: int = option(256, help="samples per stored block", validator=positive)
    format: Literal["npy", "png"] = option("npy", help="how samples are stored")
    shuffle: bool = option(True, help="shuffle the samples before writing")
    seed: int = option(0, help="seed of the shuffle and of drawn samples")
    count: int | None = option(None, help="how many samples (required for sources that draw without end)",
                               validator=positive)
    progress: bool = option(True, help="show a progress bar")


def parse_write_args(items: list[str], registry: Registry) -> tuple[Any, dict[str, Any]]:
    """``data.*`` items -> a built source; the rest -> `write_shards` keyword arguments."""
    opts = parse_options("sbcore shards write", ShardsWriteOptions, items)
    if "source" not in opts.data:
        raise ConfigError([f"give data.source=NAME; available: {', '.join(registry.names('dataset'))}",
                           f"usage: {SHARDS_USAGE}"])
    try:
        spec = make_converter(registry).structure(opts.data, DataSource)
    except Exception as exc:  # noqa: BLE001 - reported like any config error
        raise ConfigError(error_lines(exc, "data")) from None
    options = {"pattern" if k == "out" else "encoding" if k == "format" else k: v
               for k, v in attrs.asdict(opts).items() if k != "data"}
    try:
        return spec.build(registry), options
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError([f"data ({spec.kind}): {exc}"]) from None


def cmd_shards(args: argparse.Namespace) -> int:
    from sbcore.plugins import get_plugins

    source, options = parse_write_args(args.items, get_plugins().registry)
    print(f"source {describe(source)}")
    try:
        index = write_shards(source, **options)
    except ValueError as exc:  # what the options and the source allow together (count, png needs images)
        raise UserError(f"sbcore shards write: {exc}") from None
    print(f"wrote {index['count']} samples in {len(index['shards'])} shard(s): {index['urls']}")
    print(f"index: {index_path(options['pattern'])}")
    print(f"train from them with: data.x0: {{source: shards, urls: \"{index['urls']}\"}}")
    return 0
