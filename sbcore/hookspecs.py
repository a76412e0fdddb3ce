"""Every hook sbcore calls, grouped by lifecycle. This module is the plugin author's contract.

A plugin is a module (or object) with functions decorated by `sbcore.hookimpl`, named after the
specs below and taking any subset of their arguments (always passed by keyword). Plugins are found
through the entry-point group ``sbcore``; the entry-point name is the plugin's name in
``sbcore plugins`` and ``SBCORE_PLUGINS=a,b``. ``plugin=NAME`` in a config names a *method* (a
registered ``method`` component, e.g. ``bm`` or ``dsbm``), which any plugin may provide, or the plugin
that registers it when it registers exactly one.
Built-in components register through these same hooks.

Scope. Every installed plugin is loaded for every command, and its hooks are called for every
run, whichever method the run uses: a lifecycle hook that should act only on its own method's
runs checks ``run.config.plugin``. A plugin that fails to load (import error, a hook name that
matches no spec, a failing or clashing ``sbcore_register``) is left out whole and reported by
``sbcore plugins``. Lifecycle hooks are called one implementation at a time: one that raises is
reported and switched off for the rest of the run (``log.strict: true`` stops the run instead),
except that sbcore's own errors (`sbcore.errors`) always stop it; new-style hook wrappers are
not supported on lifecycle hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from sbcore.metrics.translation import Evaluation
    from sbcore.registry import Registry
    from sbcore.run import Run

PROJECT = "sbcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# --------------------------------------------------------------------------------------------
# Registration: called once, when the plugin manager is built.
# --------------------------------------------------------------------------------------------


@hookspec
def sbcore_register(registry: Registry) -> None:
    """Add named components with ``registry.add(kind, name, obj)``.

    Kinds: ``method`` (a Trainer subclass whose ``Config`` attrs class is the ``method:`` section),
    ``process``, ``coupling``, ``network``, ``sampler``, ``dataset``, ``metric``, ``logger``.
    Registering a name another plugin already took is an error naming both plugins.
    """


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


@hookspec
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add sub-commands to ``sbcore``.

    Create a parser with ``subparsers.add_parser(name, help=...)`` and set its handler with
    ``parser.set_defaults(handler=fn)``; ``fn(args)`` returns the process exit code.
    """


@hookspec
def sbcore_sample_options(run: Run) -> dict[str, tuple[type, str]] | None:
    """Extra ``key=value`` options of ``sbcore sample`` for a run of this plugin's method.

    Return ``{name: (type, help)}`` or ``{name: (type, help, validator)}`` (e.g. ``{"resolution": (int,
    "output grid size", sbcore.options.positive)}``) when ``run.config.plugin`` is one of this plugin's
    methods, else None. ``sbcore sample`` parses the given values with ``type`` (``bool`` accepts
    true/false) and the validator, rejects unknown options listing the valid ones, and passes those given
    to the trainer's ``sample`` as keyword arguments. A table of another shape is reported naming the
    plugin and left out.
    """


# --------------------------------------------------------------------------------------------
# Run lifecycle: called by the Trainer for every run (any method), on the main process only
# (rank 0 under DDP), through `sbcore.run.Run.call_hook`.
# --------------------------------------------------------------------------------------------


@hookspec
def sbcore_run_start(run: Run) -> None:
    """A run begins (also after a resume); ``run.config`` and ``run.dir`` are set."""


@hookspec
def sbcore_step_end(run: Run, step: int, metrics: dict[str, float]) -> None:
    """A logged optimisation step ended; ``metrics`` holds scalars such as loss and lr."""


@hookspec
def sbcore_evaluate(run: Run, evaluation: Evaluation) -> dict[str, float] | None:
    """Compute metrics on an evaluation's samples; the dicts of all plugins are merged into its metrics.

    ``evaluation.step`` is the step evaluated, ``evaluation.metrics`` what the method computed, and
    ``evaluation.translations`` maps each trained direction (``"forward"``: x0 -> x1, ``"backward"``:
    x1 -> x0) to a `sbcore.metrics.translation.Translation` whose row-aligned CPU tensors are
    ``inputs`` (start side), ``outputs`` (a Trajectory: ``x``, ``path`` or None, ``nfe``), ``data``
    (independent draws of the end side) and ``partner`` (each input's true partner, None unless the data
    is paired). Return None to contribute nothing.
    """


@hookspec
def sbcore_checkpoint_saved(run: Run, path: Path) -> None:
    """A checkpoint was written atomically to ``path``."""


@hookspec
def sbcore_run_end(run: Run, summary: dict[str, Any]) -> None:
    """The run finished; ``summary`` holds the final metrics."""
