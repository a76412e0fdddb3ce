"""sbcore's environment variables, read strictly: a flag is 1/true/yes or 0/false/no (or unset).

Anything else is refused with one line rather than guessed: ``SBCORE_ALLOW_PIPE=false`` must never
count as permission because the text is not empty.
"""

from __future__ import annotations

import os

from sbcore.errors import UserError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def flag(name: str, default: bool = False) -> bool:
    """The boolean environment variable `name`; `default` when unset, a `UserError` when unreadable."""
    value = os.environ.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise UserError(f"environment variable {name}={value!r}: expected 1, true or yes (on) or 0, false or no "
                    "(off)")
