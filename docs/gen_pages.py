"""Pages generated from the code at `mkdocs build` time (mkdocs-gen-files), so they cannot drift from it:

* reference/cli.md: every command of `sbcore --help`, its options from their `sbcore.options` definitions;
* reference/config.md: every config section from its attrs class, every method's `method:` section and
  every registered component's constructor parameters (what a `kind:` / `source:` section accepts);
* reference/conformance.md: every check of the conformance suites with its docstring;
* plugins/<name>/index.md: each plugin's README, with the files it links to (pictures) copied beside it.
"""

from __future__ import annotations

import argparse
import inspect
import re
import typing
from pathlib import Path

import attrs
import mkdocs_gen_files

from sbcore import config as config_module
from sbcore.cli import build_parser
from sbcore.config import schema_for
from sbcore.options import describe
from sbcore.plugins import get_plugins
from sbcore.testing import CouplingSuite, NetworkSuite, ProcessSuite, SamplerSuite

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("dsbm", "sdsb", "ddib", "i2sb", "dbfs")


def cell(text: object) -> str:
    """Text for a table cell or a line: pipes escaped, brackets too (`[n=N]` is no link)."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("[", "\\[").replace("]", "\\]")


def first_paragraph(doc: str | None) -> str:
    return cell(inspect.cleandoc(doc or "").split("\n\n")[0])


# ---- the command line --------------------------------------------------------------------------------------


def cli_page() -> str:
    plugins = get_plugins()
    parser = build_parser(plugins)
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    lines = ["# Command line", "", "Generated from the commands' definitions (`sbcore COMMAND --help` shows the same).",
             "Items are `key=value`; a command whose items are typed options validates all of them before it reads "
             "or writes anything (`sbcore.options`).", ""]
    for name, command in sub.choices.items():
        lines += [f"## `sbcore {name}`", "", cell(command.description or ""), ""]
        options = command.get_default("options")
        if options is not None:
            lines += ["| option | type | default | meaning |", "| --- | --- | --- | --- |"]
            lines += [f"| `{n}` | {cell(t)} | `{cell(d)}` | {cell(h)} |" for n, t, d, h in describe(options)]
        else:
            for action in command._actions:
                if action.dest not in ("help",) and action.help:
                    lines.append(f"* `{action.dest}`: {cell(action.help)}")
        lines.append("")
    return "\n".join(lines)


# ---- the configuration ---------------------------------------------------------------------------------------


def type_name(t: object) -> str:
    return str(t).replace("typing.", "").replace("sbcore.config.", "").replace("<class '", "").replace("'>", "")


def fields_table(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    rows = ["| key | type | default |", "| --- | --- | --- |"]
    for field in attrs.fields(cls):
        if field.default is attrs.NOTHING:
            default = "(required)"
        elif isinstance(field.default, attrs.Factory):
            made = field.default.factory()
            default = type(made).__name__ + "()" if attrs.has(type(made)) else repr(made)
        else:
            default = repr(field.default)
        rows.append(f"| `{field.name}` | {cell(type_name(hints.get(field.name, field.type)))} | `{cell(default)}` |")
    return rows


def config_page() -> str:
    lines = ["# Configuration", "", first_paragraph(config_module.__doc__), "",
             "Generated from the attrs classes of `sbcore.config` and the registry: `sbcore config plugin=NAME` "
             "prints a complete, runnable config of a method; `sbcore config FILE.yaml` resolves yours.", ""]
    sections = [("top level", config_module.Config), ("data", config_module.DataConfig),
                ("train", config_module.TrainConfig), ("log", config_module.LogConfig),
                ("log.neptune", config_module.NeptuneLogConfig),
                ("log.tensorboard", config_module.TensorBoardLogConfig), ("log.wandb", config_module.WandbLogConfig),
                ("launcher", config_module.LauncherConfig),
                ("eval", config_module.EvalConfig)]
    for name, cls in sections:
        lines += [f"## `{name}`", "", first_paragraph(cls.__doc__), "", *fields_table(cls), ""]
    registry = get_plugins().registry
    lines += ["## `method:` of each method", ""]
    for method in registry.names("method"):
        trainer = registry.get("method", method)
        lines += [f"### `plugin: {method}`", "", first_paragraph(trainer.Config.__doc__), "",
                  *fields_table(trainer.Config), ""]
    keys = {"process": "kind", "network": "kind", "sampler": "kind", "coupling": "kind", "dataset": "source"}
    for kind, tag in keys.items():
        lines += [f"## Components: {kind}", "", f"A `{kind}` section names one with `{tag}:`; the other keys are its "
                  "constructor parameters.", ""]
        for name in registry.names(kind):
            component = registry.get(kind, name)
            lines += [f"### `{tag}: {name}`", "", first_paragraph(component.__doc__), "",
                      *fields_table(schema_for(component)), ""]
    return "\n".join(lines)


# ---- the conformance suites ------------------------------------------------------------------------------------


def conformance_page() -> str:
    lines = ["# Conformance checks", "", "Every check of the suites in `sbcore.testing`, with what it verifies "
             "(its docstring). [The five interfaces](../contracts.md) explains the contracts they enforce.", ""]
    for suite in (NetworkSuite, ProcessSuite, SamplerSuite, CouplingSuite):
        lines += [f"## {suite.__name__} (`{suite.kind}`)", "", first_paragraph(suite.__doc__), "",
                  "| check | what it verifies |", "| --- | --- |"]
        for check in suite.checks():
            doc = first_paragraph(getattr(suite, f"check_{check}").__doc__) or "(see the source)"
            lines.append(f"| `{check}` | {cell(doc)} |")
        lines.append("")
    return "\n".join(lines)


# ---- the plugins' READMEs -----------------------------------------------------------------------------------------

LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def plugin_page(name: str) -> str:
    """The README of plugins/sb-NAME; pictures it links are copied beside the page, other local links
    become code (the files live in the repository, not on the site)."""
    folder = ROOT / "plugins" / f"sb-{name}"
    text = (folder / "README.md").read_text(encoding="utf-8")

    def fix(match: re.Match) -> str:
        bang, label, target = match.groups()
        if re.match(r"^[a-z]+:|^#", target):
            return match.group(0)
        path = (folder / target).resolve()
        if bang and path.is_file():
            with mkdocs_gen_files.open(f"plugins/{name}/{target}", "wb") as out:
                out.write(path.read_bytes())
            return match.group(0)
        return f"{label} (`{target}`)" if label != target else f"`{target}`"

    return LINK.sub(fix, text)


with mkdocs_gen_files.open("reference/cli.md", "w") as f:
    f.write(cli_page())
with mkdocs_gen_files.open("reference/config.md", "w") as f:
    f.write(config_page())
with mkdocs_gen_files.open("reference/conformance.md", "w") as f:
    f.write(conformance_page())
for plugin in PLUGINS:
    with mkdocs_gen_files.open(f"plugins/{plugin}/index.md", "w") as f:
        f.write(plugin_page(plugin))
