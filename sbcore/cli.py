"""The ``sbcore`` command line: run | sample | config | examples | plugins (plugins may add more).

`main` is the one error boundary: sbcore's expected failures (`sbcore.errors`, config and
component errors, missing files, I/O) end as a few lines on stderr with exit status 2 (user error)
or 1 (a run that failed); a traceback only with ``--debug`` or ``SBCORE_DEBUG=1``. Anything else
is a bug and keeps its traceback. Plugins load only when the command needs them, so ``--version``
and the core commands' ``--help`` are fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
import warnings
from typing import Any

import attrs
import yaml

from sbcore import __version__
from sbcore.config import structure_config
from sbcore.config_text import ConfigError, merge, parse_overrides, read_yaml_file, shorten, yaml_problem
from sbcore.env import flag
from sbcore.errors import SbcoreError
from sbcore.example_configs import ExamplesOptions, default_config
from sbcore.options import help_text, option, parse_options
from sbcore.plugins import Plugins, get_plugins, is_core, warn_plugin
from sbcore.registry import UnknownComponentError

USAGE_RUN = "sbcore run [plugin=NAME] [CONFIG.yaml | -] [key.sub=value ...]"


def split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """Separate the optional YAML path from ``key=value`` overrides."""
    paths = [a for a in items if "=" not in a]
    if len(paths) > 1:
        raise ConfigError([f"expected at most one config file, got {paths}"])
    return (paths[0] if paths else None), [a for a in items if "=" in a]


def load_config(items: list[str], plugins: Plugins) -> tuple[Any, str | None]:
    """The config of CONFIG.yaml (``-``: read from stdin) and overrides, and the file's path (None for stdin)."""
    path, overrides = split_args(items)
    raw = read_yaml_file(path) if path else {}
    raw = merge(raw, parse_overrides(overrides))
    return structure_config(raw, plugins.registry), None if path == "-" else path


# ---- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from sbcore.launch import launch

    plugins = get_plugins()
    config, path = load_config(args.items, plugins)
    return launch(config, path, plugins)


@attrs.frozen(kw_only=True)
class ConfigOptions:
    plugin: str | None = option(None, help="the method, or the plugin that registers it: start from its runnable "
                                           "example (with a FILE.yaml: replace the file's plugin)")


def cmd_config(args: argparse.Namespace) -> int:
    """Print a complete config, every key with its value: a method's runnable defaults, or FILE.yaml resolved."""
    plugins = get_plugins()
    path, items = split_args(args.items)
    own = [i for i in items if i.split("=", 1)[0].strip() in attrs.fields_dict(ConfigOptions)]
    opts = parse_options("sbcore config", ConfigOptions, own)
    overrides = parse_overrides([i for i in items if i not in own])
    if path is not None:
        raw = read_yaml_file(path)
    elif opts.plugin is not None:
        raw = default_config(plugins, plugins.registry.method_name(opts.plugin))
    else:
        methods = ", ".join(plugins.registry.names("method"))
        raise ConfigError([f"give plugin=NAME or a CONFIG.yaml; methods: {methods}"])
    if opts.plugin is not None:
        raw["plugin"] = opts.plugin
    raw = merge(raw, overrides)
    config = structure_config(raw, plugins.registry)
    from sbcore.config import make_converter

    shown = _with_defaults(config, make_converter(plugins.registry), plugins)
    if (raw.get("train") or {}).get("steps") is None:  # left to the method (its stages), so edits to them apply
        shown["train"]["steps"] = None
    print(yaml.safe_dump(shown, sort_keys=False), end="")
    return 0


def _with_defaults(config: Any, conv: Any, plugins: Plugins) -> dict[str, Any]:
    """The config as a dict in which every component shows all its constructor parameters and defaults."""
    import attrs

    from sbcore.config import Component, schema_for

    def full(component: Component) -> dict[str, Any]:
        schema = schema_for(plugins.registry.get(component.registry_kind, component.kind))
        params = {a.name: a.default for a in attrs.fields(schema) if a.default is not attrs.NOTHING}
        return {component.tag: component.kind, **_plain(conv.unstructure({**params, **component.params}))}

    conv.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, Component), full)
    return conv.unstructure(config)


def _plain(value: Any) -> Any:
    """Tuples as lists and anything YAML cannot show as its text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def cmd_sample(args: argparse.Namespace) -> int:
    from sbcore.sample import sample_command

    return sample_command(args.items)


@attrs.frozen(kw_only=True)
class PluginsOptions:
    """``sbcore plugins`` takes no options."""


def cmd_plugins(args: argparse.Namespace) -> int:
    parse_options("sbcore plugins", PluginsOptions, args.items)
    plugins = get_plugins()
    for name, info in plugins.infos.items():
        if info.error:
            print(f"{info.name} ({info.distribution} {info.version}): FAILED TO LOAD: {info.error}")
            continue
        print(f"{name} ({info.distribution} {info.version})")
        hooks = plugins.hooks_of(name)
        print(f"  hooks: {', '.join(hooks) if hooks else '-'}")
        for kind, names in plugins.registry.owned_by(name).items():
            print(f"  {kind}: {', '.join(names)}")
    return 0


# ---- entry point -----------------------------------------------------------------------------

def cmd_examples(args: argparse.Namespace) -> int:
    from sbcore.example_configs import examples_command

    return examples_command(args.items)


#: the core's commands: (name, handler, one-line help, what its items are, options class or None).
COMMANDS = [
    ("run", cmd_run, f"train a method: {USAGE_RUN}",
     "CONFIG.yaml (at most one; - reads it from stdin) and key.sub=value overrides of any config key (see "
     "`sbcore config plugin=NAME`); plugin=NAME is a method's name as `sbcore plugins` lists it, or the name of "
     "the plugin that registers it; resume=true continues the run folder out/name from its newest checkpoint, "
     "resume=force also accepts a changed network, method, process or data", None),
    ("sample", cmd_sample, "sample a trained run or translate your inputs: "
                           "sbcore sample run=DIR (n=N|all | input=FILE_OR_FOLDER) out=FILE.npz",
     "run=DIR n=N|all out=FILE.npz direction=forward|backward steps=K path=true|false seed=S split=test|train "
     "input=FILE_OR_FOLDER key=ARRAY device=auto|cpu|cuda sampler.kind=NAME sampler.KEY=VALUE "
     "eval.output=final|predicted_end eval.data.SIDE.KEY=VALUE, and options the run's method adds", None),
    ("config", cmd_config, "print a complete config that runs: sbcore config plugin=NAME [key.sub=value ...] "
                           "or sbcore config CONFIG.yaml [key.sub=value ...]",
     "plugin=NAME (its runnable example) or CONFIG.yaml, and key.sub=value overrides; prints every key, every "
     "component's parameters with their defaults; `sbcore config plugin=NAME | sbcore run -` trains it", ConfigOptions),
    ("examples", cmd_examples, "list the example configs the plugins ship, or copy one: "
                               "sbcore examples [plugin=NAME] [copy=FILE]",
     "plugin=NAME (only its examples) and copy=FILE (write that example to the current folder)", ExamplesOptions),
    ("plugins", cmd_plugins, "list plugins, their hooks and components", "(none)", None),
]


def build_parser(plugins: Plugins | None = None) -> argparse.ArgumentParser:
    """The core's commands, plus those of `plugins` when given (``sbcore_add_commands``).

    A command whose ``key=value`` items are an options class (`sbcore.options`) keeps it as the parser
    default ``options``: its ``--help`` lists them, and the documentation's CLI reference reads them."""
    parser = argparse.ArgumentParser(prog="sbcore", description="Schrödinger and diffusion bridges.",
                                     epilog="--debug (or SBCORE_DEBUG=1) shows the traceback of an error.")
    parser.add_argument("--version", action="version", version=f"sbcore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, fn, helptext, items, options in COMMANDS:
        p = sub.add_parser(name, help=helptext, description=helptext,
                           epilog=help_text(options) if options else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("items", nargs="*", help=items)
        p.set_defaults(handler=fn, options=options)
    if plugins is not None:
        add_plugin_commands(plugins, sub)
    return parser


class _NewNamesOnly:
    """The subparsers seen by a plugin: a command name (or alias) that is taken already is an error,
    instead of argparse silently replacing the other command."""

    def __init__(self, sub: argparse._SubParsersAction) -> None:
        self._sub = sub

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        for taken in (name, *kwargs.get("aliases", ())):
            if taken in self._sub.choices:
                owner = self._sub.choices[taken].get_default("plugin") or "sbcore"
                raise ValueError(f"command {taken!r} is taken already (by {owner})")
        return self._sub.add_parser(name, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._sub, attr)


def add_plugin_commands(plugins: Plugins, sub: argparse._SubParsersAction) -> None:
    """Each plugin's ``sbcore_add_commands`` on its own: one that raises (or clashes with a command
    name) is reported once, naming it, and its half-added commands are removed; the rest keep working.
    Every command remembers its plugin, so `main` can name it when the command fails."""
    for impl in plugins.hook.sbcore_add_commands.get_hookimpls():  # registration order: built-ins first
        names, actions = dict(sub.choices), list(sub._choices_actions)
        try:
            impl.function(subparsers=_NewNamesOnly(sub))
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's hook leaves that plugin out
            sub.choices.clear()
            sub.choices.update(names)
            sub._choices_actions[:] = actions
            if is_core(impl.plugin_name, plugins):
                raise
            warn_plugin(impl.plugin_name, f"its commands failed to load ({type(exc).__name__}: {exc}); left out")
            continue
        for name, parser in sub.choices.items():
            if name not in names:
                parser.set_defaults(plugin=impl.plugin_name)


def _expected(exc: BaseException) -> tuple[int, str] | None:
    """(exit status, message) of an expected failure; None for a bug (keeps its traceback)."""
    if isinstance(exc, SbcoreError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (ConfigError, UnknownComponentError)):
        return 2, str(exc)
    if isinstance(exc, yaml.YAMLError):  # YAML the user gave (an option, a file) that no caller named
        return 2, f"not valid YAML: {yaml_problem(exc)}"
    if isinstance(exc, OSError) and exc.filename is not None:
        user = isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                                FileExistsError))
        return (2 if user else 1), f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return 1, f"I/O error: {exc}"
    return None


#: the most lines and characters an error message shows (a message quoting a huge value is cut).
MAX_MESSAGE_LINES = 40
MAX_MESSAGE_CHARS = 6000


def _message(text: str) -> str:
    lines = text.splitlines() or [""]
    if len(lines) > MAX_MESSAGE_LINES:
        lines = [*lines[:MAX_MESSAGE_LINES], f"... ({len(lines) - MAX_MESSAGE_LINES} more lines)"]
    return shorten("\n".join(lines), MAX_MESSAGE_CHARS)


def _warning_line(message: Warning | str, *_: Any, **__: Any) -> str:
    """Python warnings as one ``sbcore: warning:`` line, without the source line."""
    return f"sbcore: warning: {shorten(str(message))}\n"


def main(argv: list[str] | None = None) -> int:
    """The command line: the exit status (0 done, 1 the run failed, 2 a user error, 128+N a signal)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    from sbcore.launch.signals import Preempted

    args, formatwarning = None, warnings.formatwarning
    warnings.formatwarning = _warning_line
    try:
        debug = debug or flag("SBCORE_DEBUG")
        command = next((a for a in argv if not a.startswith("-")), None)
        core = command in {name for name, *_ in COMMANDS} or argv[:1] == ["--version"]
        plugins = None if core else get_plugins()
        args = build_parser(plugins).parse_args(argv)
        if args.command != "plugins":
            for name, error in get_plugins().failed().items():
                print(f"sbcore: warning: plugin {name} failed to load and is left out: {error}", file=sys.stderr)
        return int(args.handler(args) or 0)
    except Preempted as exc:
        name = signal.Signals(exc.signum).name
        print(f"sbcore: stopped by {name} at step {exc.step} with a checkpoint; continue with resume=true",
              file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        print("sbcore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        expected = _expected(exc)
        owner = getattr(args, "plugin", None)
        if expected is None and not is_core(owner):  # a third-party command's own bug: name the plugin
            expected = 1, (f"plugin {owner!r}: command {args.command!r} failed ({type(exc).__name__}: {exc}); "
                           "--debug shows the traceback")
        if expected is None:
            raise
        if debug:
            traceback.print_exception(exc)
        print(f"sbcore: {_message(expected[1])}", file=sys.stderr)
        return expected[0]
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
