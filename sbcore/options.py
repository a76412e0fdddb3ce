"""Command options: every sub-command's ``key=value`` items are one typed attrs class, validated
like the config before the command reads or writes anything.

A command declares its options once::

    @attrs.frozen(kw_only=True)
    class EvalOptions:
        run: Path = option(help="the run folder", validator=existing_dir)
        n: int | Literal["all"] = option(2000, help="samples per direction, or all", validator=positive)
        sampler: dict[str, Any] = option(factory=dict, help="sampler overrides: sampler.kind=euler")

and parses its items with ``parse_options("sbcore eval", EvalOptions, items)``. Scalars are read
from their text by the field's type (``n=abc`` is "expected an integer"); a field typed as a mapping
collects dotted items (``sampler.kind=euler sampler.steps=50``, values parsed as YAML). Every problem
is collected and raised at once as a `ConfigError` whose lines name the option, what was expected and
what was given, with the closest valid option for a typo -- the config's own messages. `describe`
renders the options for ``--help`` and the CLI reference, from the same definitions.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import yaml

from sbcore.config_text import ConfigError, load_yaml, set_override, yaml_problem

T = TypeVar("T")

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def option(default: Any = attrs.NOTHING, *, help: str, factory: Any = None, validator: Any = None) -> Any:  # noqa: A002
    """An option field: its default, a one-line help text and an optional attrs validator."""
    if factory is not None:
        return attrs.field(factory=factory, metadata={"help": help}, validator=validator)
    return attrs.field(default=default, metadata={"help": help}, validator=validator)


# ---- validators (attrs signature) -----------------------------------------------------------------


def positive(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"expected a number > 0, got {value!r}")


def non_negative(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, (int, float)) and not value >= 0:
        raise ValueError(f"expected a number >= 0, got {value!r}")


def existing_dir(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not Path(value).is_dir():
        what = "run folder" if attribute.name == "run" else "folder"
        raise ValueError(f"{what} not found: {value}")


def existing_path(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not Path(value).exists():
        raise ValueError(f"not found: {value}")


def suffix(*allowed: str) -> Any:
    """A validator: the path ends in one of `allowed` (``.npz``), so an output is never silently renamed."""

    def check(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and Path(value).suffix.lower() not in allowed:
            raise ValueError(f"expected a file name ending in {' or '.join(allowed)}, got {str(value)!r}")

    return check


# ---- reading a value from its text by type --------------------------------------------------------


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType)


def _describe_type(t: Any) -> str:
    if t is int:
        return "an integer"
    if t is float:
        return "a finite number"
    if t is bool:
        return "true or false"
    if t is str:
        return "a string"
    if t is Path:
        return "a path"
    if t is type(None):
        return "none"
    if typing.get_origin(t) is Literal:
        return " or ".join(repr(a) if not isinstance(a, str) else a for a in typing.get_args(t))
    if _is_union(t):
        return " or ".join(_describe_type(m) for m in typing.get_args(t))
    if typing.get_origin(t) in (list, tuple):
        return "a comma-separated list"
    return getattr(t, "__name__", str(t))


def read_value(text: str, t: Any) -> Any:
    """`text` as a value of type `t`; ValueError("expected ..., got ...") when it is not one."""
    if _is_union(t):
        for member in typing.get_args(t):
            try:
                return read_value(text, member)
            except ValueError:
                continue
        raise ValueError(f"expected {_describe_type(t)}, got {text!r}")
    origin = typing.get_origin(t)
    if t is type(None):
        if text.lower() in ("none", "null"):
            return None
    elif t is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
    elif t is int:
        try:
            return int(text, 10)
        except ValueError:
            pass
    elif t is float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
    elif t is str:
        if text:
            return text
    elif t is Path:
        if text:
            return Path(text)
    elif origin is Literal:
        for choice in typing.get_args(t):
            if text == str(choice):
                return choice
    elif origin in (list, tuple):
        (member, *_) = typing.get_args(t) or (str,)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if parts:
            return [read_value(p, member) for p in parts]
    else:  # any other type: parsed as YAML (mappings, numbers)
        return load_yaml(text)
    raise ValueError(f"expected {_describe_type(t)}, got {text!r}")


def _is_mapping(t: Any) -> bool:
    """dict, dict[K, V], or either | None (a plugin's optional extra option)."""
    if _is_union(t):
        members = [m for m in typing.get_args(t) if m is not type(None)]
        return len(members) == 1 and _is_mapping(members[0])
    return t is dict or typing.get_origin(t) is dict


# ---- parsing --------------------------------------------------------------------------------------


def check_extra(extra: Any) -> None:
    """A plugin's option table is ``{name: (type, help)}`` or ``{name: (type, help, validator)}``;
    TypeError otherwise (the caller reports the plugin)."""
    if not isinstance(extra, dict):
        raise TypeError(f"expected a mapping of options, got {type(extra).__name__}")
    for name, spec in extra.items():
        ok = (isinstance(name, str) and name.isidentifier() and isinstance(spec, tuple) and len(spec) in (2, 3)
              and isinstance(spec[0], type) and isinstance(spec[1], str) and (len(spec) == 2 or callable(spec[2])))
        if not ok:
            raise TypeError(f"option {name!r}: expected (type, help) or (type, help, validator), got {spec!r}")


def with_extra(schema: type[T], extra: dict[str, tuple[Any, ...]]) -> type[T]:
    """`schema` with optional extra options ``{name: (type, help[, validator])}`` (a plugin's), each
    defaulting to None; the validator (attrs signature, e.g. `positive`) runs on a given value."""
    if not extra:
        return schema
    fields = {name: attrs.field(default=None, type=spec[0] | None, metadata={"help": spec[1], "extra": True},
                                validator=spec[2] if len(spec) == 3 else None)
              for name, spec in extra.items()}
    return attrs.make_class(schema.__name__, fields, bases=(schema,), frozen=True, kw_only=True)


def parse_options(command: str, schema: type[T], items: list[str]) -> T:
    """Validate ``key=value`` `items` into `schema`; every problem at once as a `ConfigError`."""
    fields = attrs.fields_dict(schema)
    hints = typing.get_type_hints(schema)
    errors: list[str] = []
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for item in items:
        if "=" not in item:
            errors.append(f"expected key=value, got {item!r} @ {command}")
            continue
        key, text = item.split("=", 1)
        key = key.strip()
        name, _, sub = key.partition(".")
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid options: {', '.join(fields)}"
            errors.append(f"unknown option {name!r} ({hint}) @ {command}")
            continue
        if key in seen:
            errors.append(f"option {key!r} given twice @ {command} {key}")
            continue
        seen.add(key)
        kind = hints.get(name, Any)
        try:
            if _is_mapping(kind):
                if sub:
                    set_override(values.setdefault(name, {}), sub, load_yaml(text) if text else "")
                else:
                    mapping = load_yaml(text)
                    if not isinstance(mapping, dict):
                        raise ValueError(f"expected a mapping or {name}.KEY=VALUE items, got {text!r}")
                    values[name] = mapping
            elif sub:
                raise ValueError(f"{name} takes no sub-keys (got {key!r})")
            else:
                values[name] = read_value(text, kind)
        except Exception as exc:  # noqa: BLE001 - YAML errors and ours, each reported on its line
            errors.append(f"{str(exc).splitlines()[0]} @ {command} {key}")
    given = {key.partition(".")[0] for key in seen}
    errors += [f"required option missing: {n}=... @ {command}"
               for n, f in fields.items() if f.default is attrs.NOTHING and n not in given]
    for name, value in values.items():  # every validator, so all problems are reported together
        if fields[name].validator is not None:
            try:
                fields[name].validator(None, fields[name], value)
            except (TypeError, ValueError) as exc:
                errors.append(f"{exc} @ {command} {name}")
    if errors:
        raise OptionError(command, errors + [f"usage: {usage(command, schema)}"])
    try:
        return schema(**values)
    except (TypeError, ValueError, yaml.YAMLError) as exc:  # a check across options (__attrs_post_init__)
        problem = yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else exc
        raise OptionError(command, [f"{problem} @ {command}", f"usage: {usage(command, schema)}"]) from None


class OptionError(ConfigError):
    """Invalid command options; one line per problem, like `ConfigError`."""

    def __init__(self, command: str, lines: list[str]) -> None:
        super().__init__(lines)
        self.args = (f"invalid options of {command}:\n  " + "\n  ".join(lines),)


def usage(command: str, schema: type) -> str:
    """``sbcore eval run=DIR [n=2000] ...`` from the option definitions."""
    parts = []
    for field in attrs.fields(schema):
        if field.default is attrs.NOTHING:
            parts.append(f"{field.name}=...")
        else:
            default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
            shown = "" if default in (None, {}, []) else default
            parts.append(f"[{field.name}={shown}]" if shown != "" else f"[{field.name}=...]")
    return f"{command} " + " ".join(parts)


def describe(schema: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) of each option: the ``--help`` text and the CLI reference."""
    hints = typing.get_type_hints(schema)
    rows = []
    for field in attrs.fields(schema):
        if field.default is attrs.NOTHING:
            default = "(required)"
        elif isinstance(field.default, attrs.Factory):
            default = repr(field.default.factory())
        else:
            default = repr(field.default)
        rows.append((field.name, _describe_type(hints.get(field.name, Any)), default,
                     field.metadata.get("help", "")))
    return rows


def help_text(schema: type) -> str:
    """The options as an argparse epilog: one line each."""
    return "options:\n" + "\n".join(f"  {n}: {h} ({t}; default {d})" for n, t, d, h in describe(schema))
