"""Example configs shipped inside each plugin's package, and the ``sbcore examples`` command.

Every package that registers a method keeps its example configs in its ``examples/`` folder (package
data, so they come with the wheel; in the repository that folder is a link to ``examples/<plugin>``,
one copy of each file). ``sbcore examples`` lists them, ``sbcore examples plugin=i2sb copy=NAME``
writes one to the current folder, and a method's ``default_example`` is the config that
``sbcore config plugin=NAME`` starts from.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path
from typing import Any

import attrs

from sbcore.errors import UserError
from sbcore.io.files import atomic_write
from sbcore.options import option, parse_options, usage
from sbcore.plugins import Plugins


@attrs.frozen(kw_only=True)
class ExamplesOptions:
    plugin: str | None = option(None, help="only this plugin's examples (a method or its plugin's name)")
    copy: str | None = option(None, help="write this example (its file name) to the current folder; needs plugin=")


def examples_folder(plugins: Plugins, method: str) -> Any:
    """The ``examples`` folder of the package that registers `method` (a Traversable; may not exist)."""
    owner = plugins.registry.owner("method", method)
    module = plugins.pm.get_plugin(owner) if owner else None
    package = (getattr(module, "__name__", None) or type(plugins.registry.get("method", method)).__module__)
    return importlib.resources.files(package.split(".")[0]) / "examples"


def list_examples(plugins: Plugins, method: str) -> dict[str, str]:
    """File name -> its first comment line, of every config in `method`'s package (those of other
    methods sharing the package are left out)."""
    folder = examples_folder(plugins, method)
    if not folder.is_dir():
        return {}
    found = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        text = entry.read_text(encoding="utf-8")
        if _plugin_of(text) not in (None, method):
            continue
        found[entry.name] = _summary(text)
    return found


def read_example(plugins: Plugins, method: str, name: str) -> str:
    examples = list_examples(plugins, method)
    if name not in examples:
        stem = {Path(n).stem: n for n in examples}
        if name not in stem:
            raise UserError(f"no example {name!r} for plugin {method}; available: {', '.join(examples) or '(none)'}")
        name = stem[name]
    return (examples_folder(plugins, method) / name).read_text(encoding="utf-8")


def _plugin_of(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("plugin:"):
            return line.split(":", 1)[1].split("#")[0].strip() or None
    return None


def _summary(text: str, width: int = 100) -> str:
    """The file's leading comment, cut to `width` characters."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    words = " ".join(lines)
    return words if len(words) <= width else words[: width - 3].rstrip() + "..."


def examples_command(items: list[str]) -> int:
    from sbcore.plugins import get_plugins

    opts = parse_options("sbcore examples", ExamplesOptions, items)
    plugins = get_plugins()
    if opts.copy is not None and opts.plugin is None:
        raise UserError(f"copy= needs plugin=NAME; usage: {usage('sbcore examples', ExamplesOptions)}")
    methods = [plugins.registry.method_name(opts.plugin)] if opts.plugin else plugins.registry.names("method")
    if opts.copy is not None:
        text = read_example(plugins, methods[0], opts.copy)
        target = Path(opts.copy if opts.copy.endswith((".yaml", ".yml")) else f"{opts.copy}.yaml").name
        if Path(target).exists():
            raise UserError(f"{target} exists already in this folder; remove it or copy from another folder")
        atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"wrote {target}: sbcore run {target}")
        return 0
    for method in methods:
        examples = list_examples(plugins, method)
        print(f"{method}:" + ("" if examples else " (no examples)"))
        width = max((len(n) for n in examples), default=0)
        for name, summary in examples.items():
            print(f"  {name:<{width}}  {summary}".rstrip())
    if opts.plugin:
        print(f"copy one: sbcore examples plugin={opts.plugin} copy=NAME", file=sys.stderr)
    return 0


#: the starting point of a method that names no `default_example`: two 2-D Gaussians.
FALLBACK_DATA = {"x0": {"source": "gaussian", "dim": 2, "mean": -1.0},
                 "x1": {"source": "gaussian", "dim": 2, "mean": 1.0}}


def default_config(plugins: Plugins, method: str) -> dict[str, Any]:
    """The raw config ``sbcore config plugin=METHOD`` starts from: the method's `default_example`, read from
    the ``examples/`` folder of the package whose class defines it, or `FALLBACK_DATA`."""
    from sbcore.config_text import load_yaml

    trainer = plugins.registry.get("method", method)
    definer = next((c for c in trainer.__mro__ if vars(c).get("default_example")), None)
    if definer is None:
        return {"plugin": method, "data": FALLBACK_DATA}
    folder = importlib.resources.files(definer.__module__.split(".")[0]) / "examples"
    raw = load_yaml((folder / definer.default_example).read_text(encoding="utf-8"))
    return {**raw, "plugin": method}
