"""Config text: YAML read safely (YAML 1.2 floats, no duplicate keys, no alias bombs, a size limit), the
``key.sub=value`` overrides and their merge into a config, and `ConfigError`, whose lines every command prints.
The schema the resulting mapping is structured into is `sbcore.config`."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

# ------------------------------------------------------------------------------------------------
# YAML: PyYAML reads YAML 1.1, where `3e-4` is a string; accept it as a float like YAML 1.2 does.
# ------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d[\d_]*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)


#: the largest YAML text read (a config is a few kB), and the most nodes it may expand to once aliases
#: are followed: a few hundred bytes of nested aliases otherwise make a value of billions of nodes.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_NODES = 100_000


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A mapping whose keys are unique: a repeated ``train:`` would silently drop the first one."""
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:  # before merge keys (<<: *base) are flattened in: those may be overridden
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            repeated = key in seen
        except TypeError:  # an unhashable key is reported by PyYAML itself
            break
        if repeated:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found the key {key!r} twice (first on line {seen[key].start_mark.line + 1}); keep one",
                key_node.start_mark)
        seen[key] = key_node
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


def _check_expansion(node: yaml.Node | None) -> None:
    """Refuse a document that expands (aliases followed) to more than `MAX_YAML_NODES` nodes."""
    count, stack = 0, [node] if node is not None else []
    while stack:
        current = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise yaml.YAMLError(f"the document expands to more than {MAX_YAML_NODES} values once its aliases "
                                 "(*name) are followed; write the values out or use fewer nested aliases")
        if isinstance(current, yaml.MappingNode):
            stack.extend(n for pair in current.value for n in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


class _SafeLoader(_Loader):
    """`_Loader` that refuses duplicate keys and alias bombs."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        _check_expansion(node)
        return node


_SafeLoader.add_constructor("tag:yaml.org,2002:map", _mapping_without_duplicates)


def load_yaml(text: str) -> Any:
    """YAML text as Python values: duplicate keys, over-long texts and alias bombs are a `yaml.YAMLError`."""
    if len(text) > MAX_YAML_BYTES:
        raise yaml.YAMLError(f"{len(text)} characters; sbcore reads YAML of at most {MAX_YAML_BYTES}")
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: where (line, column) and what."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


#: the longest line a config error shows: a value given in the message is cut, never printed whole.
MAX_LINE = 300


def shorten(text: str, limit: int = MAX_LINE) -> str:
    """`text` cut to `limit` characters with a mark saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class ConfigError(ValueError):
    """Invalid configuration; `lines` holds one message per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = [shorten(str(line)) for line in lines]
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.lines))


# ------------------------------------------------------------------------------------------------
# Overrides and config files
# ------------------------------------------------------------------------------------------------


def set_override(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` in a nested dict; assigning a mapping replaces the whole node."""
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {} if child is None else {"kind": child} if isinstance(child, str) else {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.steps=500", "network={kind: mlp}"]`` -> nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError([f"override {item!r} is not of the form key.sub=value"])
        key, text = item.split("=", 1)
        try:
            value = load_yaml(text) if text != "" else ""
        except yaml.YAMLError as exc:
            problem = yaml_problem(exc)
            raise ConfigError([f"override {shorten(item, 80)!r}: the value is not valid YAML ({problem}); "
                               "quote it or fix the brackets"]) from None
        set_override(tree, key.strip(), value)
    return tree


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _replaces(value):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _replaces(value: dict[str, Any]) -> bool:
    """A mapping that names a new component (kind/source) replaces the node instead of merging."""
    return "kind" in value or "source" in value


def read_yaml_file(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping; ``-`` reads it from stdin (``sbcore config plugin=bm | sbcore run -``)."""
    stdin = str(path) == "-"
    path = Path("<stdin>") if stdin else Path(path)
    if not stdin and not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    size = None if stdin else path.stat().st_size
    text = sys.stdin.read(MAX_YAML_BYTES + 1) if stdin else None
    if (size if size is not None else len(text)) > MAX_YAML_BYTES:
        raise ConfigError([f"{path}: more than {MAX_YAML_BYTES} bytes; a config file has at most {MAX_YAML_BYTES}"])
    try:
        raw = load_yaml(text if stdin else path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {yaml_problem(exc)}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {type(raw).__name__}"])
    return raw
