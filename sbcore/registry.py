"""Named registry of components, filled by plugins through the `sbcore_register` hook."""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any

#: the kinds of component a plugin can register, and what each one is.
KINDS: dict[str, str] = {
    "method": "a Trainer subclass with a `Config` attrs class (the `method:` section)",
    "process": "a ReferenceProcess class",
    "coupling": "a Coupling class",
    "network": "a Network class",
    "classifier": "a noisy classifier Network class, forward(x, t) -> class logits (guidance.classifier)",
    "sampler": "a Sampler class",
    "dataset": "a data source class",
    "latent": "a latent codec class (``data.latent``: encode(pixels) -> codes, decode(codes) -> pixels)",
    "metric": "a metric callable",
    "logger": "a logger plugin object (lifecycle hook implementations)",
    "bench": "a benchmark suite of `sbcore bench NAME`: a function(items: list[str]) -> exit status",
}


class UnknownComponentError(KeyError):
    """An unknown component name; the message lists the known ones and the closest match."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0])


class Registry:
    """kind -> name -> component, remembering which plugin registered each entry."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = defaultdict(dict)
        self._owner: dict[tuple[str, str], str] = {}
        self.kinds: dict[str, str] = dict(KINDS)
        self.current_plugin: str = "?"
        #: the core's own plugins, whose names are not aliases of the methods they register.
        self.core_plugins: set[str] = set()

    def add_kind(self, kind: str, description: str) -> None:
        """Let a plugin introduce a component kind of its own (e.g. I2SB's `corruption` operators)."""
        if self.kinds.get(kind, description) != description:
            raise ValueError(f"component kind {kind!r} already exists: {self.kinds[kind]}")
        self.kinds[kind] = description

    def add(self, kind: str, name: str, component: Any) -> Any:
        if kind not in self.kinds:
            raise ValueError(f"unknown component kind {kind!r}; known kinds: {sorted(self.kinds)}")
        key = (kind, name)
        if key in self._owner and self._items[kind][name] is not component:
            raise ValueError(
                f"{kind} {name!r} is registered twice: by {self._owner[key]!r} and by {self.current_plugin!r}"
            )
        self._items[kind][name] = component
        self._owner[key] = self.current_plugin
        return component

    def get(self, kind: str, name: str) -> Any:
        items = self._items.get(kind, {})
        if not isinstance(name, str):  # a list or mapping from YAML where a name belongs
            raise UnknownComponentError(f"{kind}: expected a name ({', '.join(sorted(items))}), "
                                        f"got {type(name).__name__} {str(name)[:80]!r}")
        if name not in items:
            raise UnknownComponentError(unknown_name_message(kind, name, items))
        return items[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self._items.get(kind, {}))

    def owner(self, kind: str, name: str) -> str | None:
        """The plugin that registered `name` as a `kind` (None when nobody did)."""
        return self._owner.get((kind, name))

    def method_name(self, name: str) -> str:
        """The method that ``plugin=name`` means: a method's name, or the name of the plugin (its entry point)
        that registers exactly one method. Unknown or ambiguous names list both kinds of name."""
        methods = self._items.get("method", {})
        if name in methods:
            return name
        by_plugin: dict[str, list[str]] = defaultdict(list)
        for method in sorted(methods):
            if self._owner[("method", method)] not in self.core_plugins:
                by_plugin[self._owner[("method", method)]].append(method)
        if len(by_plugin.get(name, [])) == 1:
            return by_plugin[name][0]
        if name in by_plugin:
            raise UnknownComponentError(f"plugin {name!r} registers several methods: {', '.join(by_plugin[name])}; "
                                        "give one of them as plugin=METHOD")
        aliases = {p: m[0] for p, m in by_plugin.items() if len(m) == 1 and p != m[0]}
        shown = ", ".join([*sorted(methods), *(f"{p} (= {m})" for p, m in sorted(aliases.items()))])
        close = difflib.get_close_matches(str(name), [*methods, *aliases], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownComponentError(f"unknown plugin {name!r}: plugin= names a method or the plugin that registers it; "
                      f"available: {shown or '(none)'}.{hint}")

    def owned_by(self, plugin: str) -> dict[str, list[str]]:
        """Components a plugin registered, grouped by kind (for `sbcore plugins`)."""
        out: dict[str, list[str]] = defaultdict(list)
        for (kind, name), owner in sorted(self._owner.items()):
            if owner == plugin:
                out[kind].append(name)
        return dict(out)


def unknown_name_message(kind: str, name: str, known: Any) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}; available: {', '.join(known) or '(none)'}.{hint}"
