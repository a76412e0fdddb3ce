"""The ``sbcore`` command line: run | sample | config | plugins (plugins may add more)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from sbcore import __version__
from sbcore.config import ConfigError, merge, parse_overrides, read_yaml_file, structure_config
from sbcore.plugins import Plugins, get_plugins
from sbcore.registry import UnknownComponentError

USAGE_RUN = "sbcore run plugin=NAME [CONFIG.yaml] [key.sub=value ...]"


def split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """Separate the optional YAML path from ``key=value`` overrides."""
    paths = [a for a in items if "=" not in a]
    if len(paths) > 1:
        raise ConfigError([f"expected at most one config file, got {paths}"])
    return (paths[0] if paths else None), [a for a in items if "=" in a]


def load_config(items: list[str], plugins: Plugins) -> tuple[Any, str | None]:
    path, overrides = split_args(items)
    raw = read_yaml_file(path) if path else {}
    raw = merge(raw, parse_overrides(overrides))
    return structure_config(raw, plugins.registry), path


# ---- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from sbcore.launch import launch

    plugins = get_plugins()
    config, path = load_config(args.items, plugins)
    return launch(config, path, plugins)


def cmd_config(args: argparse.Namespace) -> int:
    """Print the full default config of a plugin (every key, with defaults)."""
    plugins = get_plugins()
    _, overrides = split_args(args.items)
    raw = parse_overrides(overrides)
    if "plugin" not in raw:
        raise ConfigError([f"give plugin=NAME; available: {', '.join(plugins.registry.names('method'))}"])
    method_cls = plugins.registry.get("method", raw["plugin"])
    base = {"data": getattr(method_cls, "default_data", {"x0": {"source": "gaussian"}, "x1": {"source": "gaussian"}})}
    config = structure_config(merge(base, raw), plugins.registry)
    from sbcore.config import make_converter

    print(yaml.safe_dump(make_converter(plugins.registry).unstructure(config), sort_keys=False), end="")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from sbcore.sample import sample_command

    return sample_command(args.items)


def cmd_plugins(args: argparse.Namespace) -> int:
    plugins = get_plugins()
    for name, info in plugins.infos.items():
        if info.error:
            print(f"{name} ({info.distribution} {info.version}): FAILED TO LOAD: {info.error}")
            continue
        print(f"{name} ({info.distribution} {info.version})")
        hooks = plugins.hooks_of(name)
        print(f"  hooks: {', '.join(hooks) if hooks else '-'}")
        for kind, names in plugins.registry.owned_by(name).items():
            print(f"  {kind}: {', '.join(names)}")
    return 0


# ---- entry point -----------------------------------------------------------------------------


def build_parser(plugins: Plugins | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbcore", description="Schrödinger and diffusion bridges.")
    parser.add_argument("--version", action="version", version=f"sbcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, fn, helptext in [
        ("run", cmd_run, f"train a method: {USAGE_RUN}"),
        ("sample", cmd_sample, "sample a trained run or translate your inputs: "
                               "sbcore sample run=DIR (n=N | input=FILE_OR_FOLDER) out=FILE.npz"),
        ("config", cmd_config, "print the full default config: sbcore config plugin=NAME"),
        ("plugins", cmd_plugins, "list plugins, their hooks and components"),
    ]:
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("items", nargs="*", help="CONFIG.yaml and key.sub=value items")
        p.set_defaults(handler=fn)
    if plugins is not None:
        plugins.hook.sbcore_add_commands(subparsers=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        plugins = get_plugins()
        args = build_parser(plugins).parse_args(argv)
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"sbcore: {exc}", file=sys.stderr)
        return 2
    except UnknownComponentError as exc:
        print(f"sbcore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sbcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
