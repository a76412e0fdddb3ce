"""Plugin manager: built-ins plus entry-point discovery (group ``sbcore``), failure tolerant."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
from functools import cache
from typing import Any

import attrs
import pluggy

from sbcore import hookspecs
from sbcore.registry import Registry

ENTRY_POINT_GROUP = "sbcore"
#: modules of the core that register through the same hooks as third-party plugins.
BUILTIN_PLUGINS = ("sbcore.builtins", "sbcore.loggers", "sbcore.data.plugin", "sbcore.metrics.plugin",
                   "sbcore.launch.plugin", "sbcore.log.neptune", "sbcore.log.tensorboard")


@attrs.define
class PluginInfo:
    name: str
    distribution: str
    version: str
    error: str | None = None


@attrs.define
class Plugins:
    """The loaded plugin manager, its registry and what happened while loading."""

    pm: pluggy.PluginManager
    registry: Registry
    infos: dict[str, PluginInfo]

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])

    def failed(self) -> dict[str, str]:
        return {n: i.error for n, i in self.infos.items() if i.error}


def _allowed() -> set[str] | None:
    value = os.environ.get("SBCORE_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def create_plugins(extra: list[Any] | tuple[Any, ...] = ()) -> Plugins:
    """Build a fresh manager: built-ins, then installed entry points, then `extra` objects.

    A plugin that raises on import is recorded with its error and the rest still load.
    ``SBCORE_PLUGINS=a,b`` restricts which entry-point plugins load (built-ins always do).
    A hook implementation whose name matches no spec fails loudly (``check_pending``).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    version = md.version("sbcore") if _installed("sbcore") else "dev"
    for module_name in BUILTIN_PLUGINS:
        name = module_name.removeprefix("sbcore.").replace(".plugin", "")
        infos[name] = PluginInfo(name, "sbcore", version)
        pm.register(importlib.import_module(module_name), name=name)
    allowed = _allowed()
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "?"
        dist_version = ep.dist.version if ep.dist else "?"
        if allowed is not None and ep.name not in allowed:
            continue
        if ep.name in infos:
            other = infos[ep.name].distribution
            infos[ep.name].error = f"plugin name {ep.name!r} provided by both {other!r} and {dist!r}"
            continue
        infos[ep.name] = PluginInfo(ep.name, dist, dist_version)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            infos[ep.name].error = f"{type(exc).__name__}: {exc}"
    for obj in extra:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        pm.register(obj, name=name)
        infos[name] = PluginInfo(name, "(registered in code)", "-")
    pm.check_pending()
    registry = Registry()
    for name, plugin in pm.list_name_plugin():
        impl = getattr(plugin, "sbcore_register", None)
        if impl is None:
            continue
        registry.current_plugin = name
        impl(registry=registry)
    registry.current_plugin = "?"
    return Plugins(pm, registry, infos)


def _installed(dist: str) -> bool:
    try:
        md.version(dist)
    except md.PackageNotFoundError:
        return False
    return True


@cache
def get_plugins() -> Plugins:
    """The process-wide plugin set (built once)."""
    return create_plugins()
