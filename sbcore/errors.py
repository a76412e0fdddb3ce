"""The failures sbcore expects, each reported by the CLI as a few lines without a traceback.

`SbcoreError` and its subclasses carry the exit status the command line returns: 2 for a
mistake the user can fix in the command, config or files (`UserError`), 1 for a run that failed
while working (`RunFailure`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class SbcoreError(Exception):
    """An expected failure; `str(exc)` is the whole message (one or a few lines)."""

    exit_code = 1


class UserError(SbcoreError):
    """Bad input: a config key, a file, a command-line argument. Exit status 2."""

    exit_code = 2


class RunFailure(SbcoreError):
    """A run that stopped on its own terms (a non-finite loss, a failing hook in strict mode). Exit 1."""


class DataError(UserError):
    """A data file or source that cannot be used; the message names the file or key."""


class RunFolderError(UserError):
    """A run folder that cannot be used as asked (locked, resumed with a changed config, outside `out`)."""


class DeviceError(UserError):
    """A device named in the config that this machine does not have."""


class MissingDependencyError(UserError):
    """An optional package that a configured feature needs; the message says what to install."""


class PluginFailure(RunFailure):
    """A third-party plugin's own code raised where sbcore called it (a command, a hook, a component
    constructor); the message names the plugin, so the user knows whose code failed. Exit status 1."""


class NonFiniteError(RunFailure):
    """The loss or the gradient became NaN or infinite."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import an optional dependency, or say which ``pip install sbcore[extra]`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the package {module!r} ({exc}); install it with: pip install 'sbcore[{extra}]'"
        ) from exc
