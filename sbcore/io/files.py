"""Writing files so that a crash never leaves a partial one behind."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it to `path`.

    The temporary name keeps the suffix so writers that infer the format from it still work. If
    `write` raises, the temporary file is removed and an existing `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh unique name rather than mkstemp: the writer creates the file, so it gets the usual
    # umask permissions instead of mkstemp's owner-only 0600.
    tmp = str(path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}"))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename == tmp:  # name the file the user knows (a full disk)
            raise OSError(exc.errno, f"{exc.strerror or exc}; {path.name} was not written", str(path)) from None
        raise
    return path
