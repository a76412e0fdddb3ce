"""Plugin manager: built-ins plus entry-point discovery (group ``sbcore``), failure tolerant."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import attrs
import pluggy

from sbcore import hookspecs
from sbcore.config_text import ConfigError, shorten
from sbcore.errors import SbcoreError
from sbcore.registry import Registry, UnknownComponentError

ENTRY_POINT_GROUP = "sbcore"
#: modules of the core that register through the same hooks as third-party plugins.
#: every subpackage registers its components through its own `plugin` module (neptune, TensorBoard and wandb
#: are loggers of their own); their plugin names drop the "sbcore." and ".plugin" parts.
BUILTIN_PLUGINS = ("sbcore.process.plugin", "sbcore.coupling.plugin", "sbcore.network.plugin",
                   "sbcore.sampler.plugin", "sbcore.train.plugin", "sbcore.data.plugin", "sbcore.metrics.plugin",
                   "sbcore.launch.plugin", "sbcore.log.plugin", "sbcore.log.neptune", "sbcore.log.tensorboard",
                   "sbcore.log.wandb", "sbcore.export",
                   "sbcore.bench.plugin")
_BUILTIN_NAMES = frozenset(m.removeprefix("sbcore.").replace(".plugin", "") for m in BUILTIN_PLUGINS)


@attrs.define
class PluginInfo:
    name: str
    distribution: str
    version: str
    error: str | None = None
    #: the exception behind `error`, kept so a test run can show its traceback.
    exception: BaseException | None = attrs.field(default=None, repr=False)


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


def is_core(plugin_name: str | None, plugins: Plugins | None = None) -> bool:
    """Whether `plugin_name` is one of sbcore's built-ins (whose exceptions are bugs with tracebacks)."""
    if plugin_name is None:
        return True
    info = plugins.infos.get(plugin_name) if plugins is not None else None
    return (info.distribution == "sbcore") if info is not None else plugin_name in _BUILTIN_NAMES


def call_each(plugins: Plugins, hook: str, check: Callable[[Any], None] | None = None,
              **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of `hook` on its own: [(plugin name, result)], None results left out.

    A third-party implementation that raises, or returns something `check` refuses (raises on), is
    reported once on stderr naming the plugin and left out; the others' results stand (one broken
    plugin must not take down the commands of the rest). sbcore's own errors and built-ins' failures
    propagate.
    """
    results = []
    for impl in reversed(getattr(plugins.hook, hook).get_hookimpls()):  # pluggy's LIFO order
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            if result is not None and check is not None:
                check(result)
        except (SbcoreError, ConfigError, UnknownComponentError):
            raise
        except Exception as exc:
            if is_core(impl.plugin_name, plugins):
                raise
            warn_plugin(impl.plugin_name, f"{hook} failed ({type(exc).__name__}: {exc}); left out")
            continue
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


def warn_plugin(name: str, text: str) -> None:
    """One warning line naming the plugin, on stderr."""
    print(f"sbcore: warning: plugin {name!r}: {shorten(text)}", file=sys.stderr)


def _allowed() -> set[str] | None:
    value = os.environ.get("SBCORE_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def create_plugins(extra: list[Any] | tuple[Any, ...] = ()) -> Plugins:
    """Build a fresh manager: built-ins, then installed entry points, then `extra` objects.

    A third-party plugin that fails -- it raises on import, implements a hook that does not exist,
    raises in ``sbcore_register``, registers a name another plugin took, or takes an entry-point
    name another distribution took -- is recorded with its error and left out whole; the rest load.
    ``SBCORE_PLUGINS=a,b`` restricts which entry-point plugins load (built-ins always do). Built-ins
    and `extra` objects are not tolerated: their mistakes are errors.
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
        if ep.name in infos:  # the one that loaded keeps the name; the other is reported under its distribution
            infos[f"{ep.name} ({dist})"] = PluginInfo(
                ep.name, dist, dist_version,
                error=f"entry-point name {ep.name!r} is already taken by {infos[ep.name].distribution!r}; not loaded")
            continue
        infos[ep.name] = PluginInfo(ep.name, dist, dist_version)
        try:
            pm.register(ep.load(), name=ep.name)
            _check_hook_names(pm, ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            infos[ep.name].error = f"{type(exc).__name__}: {exc}"
            infos[ep.name].exception = exc
            if pm.get_plugin(ep.name) is not None:
                pm.unregister(name=ep.name)
    for obj in extra:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        pm.register(obj, name=name)
        infos[name] = PluginInfo(name, "(registered in code)", "-")
    pm.check_pending()
    registry = Registry()
    registry.core_plugins = {name for name, info in infos.items() if info.distribution == "sbcore"}
    for name, plugin in pm.list_name_plugin():
        impl = getattr(plugin, "sbcore_register", None)
        if impl is None:
            continue
        try:
            _register(registry, name, impl)
        except Exception as exc:
            if infos[name].distribution in ("sbcore", "(registered in code)"):
                raise
            infos[name].error = f"sbcore_register failed: {type(exc).__name__}: {exc}"
            infos[name].exception = exc
            pm.unregister(name=name)
    registry.current_plugin = "?"
    return Plugins(pm, registry, infos)


def _check_hook_names(pm: pluggy.PluginManager, name: str) -> None:
    """A hook implementation whose name matches no spec (a typo) is an error naming the closest hook."""
    specs = [n for n in dir(hookspecs) if n.startswith("sbcore_")]
    for caller in pm.get_hookcallers(pm.get_plugin(name)) or []:
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin_name == name and not impl.optionalhook:
                close = difflib.get_close_matches(caller.name, specs, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown hook {caller.name!r}{hint}")


class _Staged:
    """What one plugin's ``sbcore_register`` adds, applied to the registry only if the whole call succeeds."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self.kinds: list[tuple[str, str]] = []
        self.items: list[tuple[str, str, Any]] = []

    def add_kind(self, kind: str, description: str) -> None:
        self.kinds.append((kind, description))

    def add(self, kind: str, name: str, component: Any) -> Any:
        self.items.append((kind, name, component))
        return component

    def __getattr__(self, attr: str) -> Any:  # reads (names, get, kinds ...) see the registry so far
        return getattr(self._registry, attr)


def _register(registry: Registry, name: str, impl: Any) -> None:
    staged = _Staged(registry)
    impl(registry=staged)
    registry.current_plugin = name
    for kind, description in staged.kinds:
        if registry.kinds.get(kind, description) != description:
            raise ValueError(f"component kind {kind!r} already exists: {registry.kinds[kind]}")
    for kind, item, component in staged.items:
        if kind not in registry.kinds and kind not in dict(staged.kinds):
            raise ValueError(f"unknown component kind {kind!r}; known kinds: {sorted(registry.kinds)}")
        owner = registry.owner(kind, item)
        if owner is not None and registry.get(kind, item) is not component:
            raise ValueError(f"{kind} {item!r} is registered twice: by {owner!r} and by {name!r}")
    for kind, description in staged.kinds:
        registry.add_kind(kind, description)
    for kind, item, component in staged.items:
        registry.add(kind, item, component)


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
