"""The core's networks, registered through the same hook as any third-party plugin."""

from __future__ import annotations

import argparse
import json

from sbcore.hookspecs import hookimpl
from sbcore.network.adm import ADMClassifier, ADMUNet
from sbcore.network.diffusers_unet import DiffusersUNet
from sbcore.network.mlp import MLP
from sbcore.network.unet import UNet
from sbcore.options import help_text, parse_options, usage
from sbcore.registry import Registry


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("network", "mlp", MLP)
    registry.add("network", "unet", UNet)
    registry.add("network", "diffusers_unet", DiffusersUNet)
    registry.add("network", "adm_unet", ADMUNet)
    registry.add("classifier", "adm_classifier", ADMClassifier)


def cmd_import_weights(args: argparse.Namespace) -> int:
    from sbcore.network.weights import ImportOptions, import_weights
    from sbcore.plugins import get_plugins

    items = [f"file={i}" if "=" not in i and n == 0 else i for n, i in enumerate(args.items)]
    opts = parse_options("sbcore import-weights", ImportOptions, items)
    info = import_weights(opts, get_plugins().registry)
    print(f"wrote {opts.out}: {info.kind} {json.dumps(info.params)} from {opts.file}")
    return 0


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    from sbcore.network.weights import ImportOptions

    text = "convert an official checkpoint (.pt of tensors, never unpickled otherwise) into a safetensors weights file"
    command = usage("sbcore import-weights FILE.pt", ImportOptions)
    parser = subparsers.add_parser("import-weights", help=f"{text}: {command}", description=f"{text}. {command}",
                                   epilog=help_text(ImportOptions),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="FILE.pt and key=value items")
    parser.set_defaults(handler=cmd_import_weights)
