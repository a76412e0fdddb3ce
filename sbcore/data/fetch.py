"""``sbcore data fetch NAME``: the standard image datasets into ``$SBCORE_DATA_DIR`` as the ``.npz``
files the data sources read (`sbcore.data.images`), through torchvision's downloaders.

Where no network exists the command says so in one line (which server could not be reached, and
where to copy the file instead) instead of torchvision's retries and tracebacks; nothing is left
half-written. A file that is already there is kept unless ``force=true``.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import attrs

from sbcore.data.images import _FILES, data_dir, download_npz
from sbcore.errors import DataError
from sbcore.options import option, parse_options

#: seconds a server may take to accept a connection before the machine counts as offline.
PROBE_SECONDS = 5.0


@attrs.frozen(kw_only=True)
class FetchOptions:
    dir: Path | None = option(None, help="where the .npz goes (default: $SBCORE_DATA_DIR, else ~/.cache/sbcore/data)")
    force: bool = option(False, help="fetch again even when the file is there")


def source_urls(name: str) -> list[str]:
    """The addresses torchvision downloads `name` from (its class's mirrors or url)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, _FILES[name][1])
    return list(getattr(cls, "mirrors", None) or [cls.url])


def reachable(url: str, seconds: float = PROBE_SECONDS) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=seconds):
            return True
    except OSError:
        return False


def fetch(name: str, folder: Path, force: bool = False) -> tuple[Path, bool]:
    """(the dataset's file, whether it was fetched now)."""
    target = folder / _FILES[name][0][0]
    if target.is_file() and not force:
        return target, False
    urls = source_urls(name)
    if not any(reachable(url) for url in urls):
        hosts = ", ".join(sorted({urlparse(u).hostname or u for u in urls}))
        raise DataError(f"cannot fetch {name}: no connection to {hosts} (offline?); copy {target.name} "
                        f"into {folder} instead, or point SBCORE_DATA_DIR at a folder that holds it")
    log = io.StringIO()  # torchvision prints per-file progress and retries; shown only when it fails
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return download_npz(name, folder), True
    except Exception as exc:  # noqa: BLE001 - any download failure is one line naming the dataset
        last = next((line for line in reversed(log.getvalue().splitlines()) if line.strip()), "")
        raise DataError(f"cannot fetch {name}: {type(exc).__name__}: {exc}" + (f" ({last})" if last else "")) from exc


USAGE = f"sbcore data fetch {'|'.join(_FILES)} [dir=FOLDER] [force=true]"


def fetch_command(name: str, items: list[str]) -> int:
    options = parse_options("sbcore data fetch", FetchOptions, items)
    folder = Path(options.dir).expanduser() if options.dir else data_dir()
    path, fetched = fetch(name, folder, options.force)
    print(f"{name}: {'fetched' if fetched else 'already there'}: {path}", file=sys.stdout)
    return 0

