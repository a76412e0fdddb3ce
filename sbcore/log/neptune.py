"""neptune logger plugin (``log.neptune.enabled=true``; needs the ``neptune`` extra).

neptune's hosted service shut down in March 2026, so ``offline`` is the default mode: the client
writes an operation log under ``<run>/neptune/offline/run__<id>__...`` that neptune's exporter can
migrate to other trackers, and `read_offline_run` reads it back. ``async`` is attempted only with
a well-formed ``NEPTUNE_API_TOKEN`` whose server answers a TCP connect within a few seconds;
otherwise the run falls back to offline with one warning, so a missing token or network never
blocks or crashes training. The token is only ever read from the environment by the client.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import socket
import threading
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sbcore.errors import require
from sbcore.hookspecs import hookimpl
from sbcore.log.common import PictureWatch, flatten_config, scalars

#: seconds a reachability probe of the neptune server may take before falling back to offline.
PROBE_SECONDS = 3.0
_open: dict[Path, tuple[Any, PictureWatch]] = {}


class NeptuneFallbackWarning(UserWarning):
    """neptune could not run in the requested mode and logs offline instead."""


def _server_of(token: str) -> tuple[str, int] | None:
    """(host, port) of the API address inside a neptune token (base64 JSON), None if malformed."""
    try:
        payload = json.loads(base64.b64decode(token.encode(), validate=True))
        url = urlparse(payload["api_address"])
    except (ValueError, KeyError, TypeError):
        return None
    if not url.hostname:
        return None
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def _reachable(host: str, port: int, seconds: float = PROBE_SECONDS) -> bool:
    """TCP connect in a daemon thread, so a slow DNS lookup cannot hold the run either."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=seconds):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(seconds + 0.5)
    return bool(result and result[0])


def choose_mode(requested: str) -> tuple[str, str | None]:
    """The mode to use and, when it differs from `requested`, why (never quoting the token)."""
    if requested != "async":
        return requested, None
    token = os.environ.get("NEPTUNE_API_TOKEN", "")
    if not token:
        return "offline", "NEPTUNE_API_TOKEN is not set"
    server = _server_of(token)
    if server is None:
        return "offline", "NEPTUNE_API_TOKEN is not a well-formed neptune token"
    if not _reachable(*server):
        return "offline", f"the neptune server {server[0]}:{server[1]} cannot be reached"
    return "async", None


@contextlib.contextmanager
def _data_directory(path: Path):
    """neptune reads NEPTUNE_DATA_DIRECTORY when a run starts; point it at the run folder."""
    old = os.environ.get("NEPTUNE_DATA_DIRECTORY")
    os.environ["NEPTUNE_DATA_DIRECTORY"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("NEPTUNE_DATA_DIRECTORY", None)
        else:
            os.environ["NEPTUNE_DATA_DIRECTORY"] = old


def open_run(project: str, mode: str, folder: Path, name: str, tags: list[str]) -> Any:
    """Start a neptune run (falling back to offline); python's `random` state is left untouched."""
    neptune = require("neptune", "neptune", "log.neptune.enabled")

    mode, reason = choose_mode(mode)
    kwargs = {"project": project, "name": name, "tags": tags, "capture_hardware_metrics": False,
              "capture_stdout": False, "capture_stderr": False, "capture_traceback": False,
              "source_files": [], "git_ref": False}
    state = random.getstate()
    try:
        with _data_directory(folder):
            if mode == "async":
                try:
                    return neptune.init_run(mode="async", **kwargs)
                except Exception as exc:  # noqa: BLE001 - any client failure means: log offline
                    mode, reason = "offline", f"neptune async mode failed ({type(exc).__name__})"
            if reason:
                warnings.warn(f"neptune: {reason}; logging offline to {folder}", NeptuneFallbackWarning, stacklevel=2)
            return neptune.init_run(mode=mode, **kwargs)
    finally:
        random.setstate(state)


def _upload_pictures(nrun: Any, watch: PictureWatch) -> None:
    for path in watch.new():
        nrun[f"pictures/{path.stem}"].upload(str(path))


@hookimpl
def sbcore_run_start(run: Any) -> None:
    cfg = run.config.log.neptune
    if not (cfg.enabled and run.is_main) or run.dir in _open:
        return
    nrun = open_run(cfg.project, cfg.mode, run.dir / "neptune", run.dir.name, list(cfg.tags))
    nrun["config"] = flatten_config(run.config_dict())
    _open[run.dir] = (nrun, PictureWatch(run.dir))


@hookimpl
def sbcore_step_end(run: Any, step: int, metrics: dict[str, Any]) -> None:
    if run.dir not in _open:
        return
    nrun, watch = _open[run.dir]
    for key, value in scalars(metrics).items():
        nrun[f"metrics/{key}"].append(value, step=step)
    if any(k.startswith("eval/") for k in metrics):
        _upload_pictures(nrun, watch)


@hookimpl
def sbcore_checkpoint_saved(run: Any) -> None:
    """Make what was logged so far durable, so a preempted run keeps it."""
    if run.dir in _open:
        _open[run.dir][0].wait()


@hookimpl
def sbcore_run_end(run: Any, summary: dict[str, Any]) -> None:
    if run.dir not in _open:
        return
    nrun, watch = _open.pop(run.dir)
    _upload_pictures(nrun, watch)
    for key, value in scalars(summary).items():
        nrun[f"summary/{key}"] = value
    nrun.stop()


def offline_runs(run_dir: Path) -> list[Path]:
    """neptune's offline folders of a run (one per start, e.g. after a resume)."""
    return sorted(Path(run_dir, "neptune", "offline").glob("run__*"), key=lambda p: p.stat().st_mtime)


def read_offline_run(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[tuple[Any, Any]]]]:
    """(metadata, fields, series) of an offline run, from its operation log ``data-<n>.log``."""
    meta = json.loads(Path(folder, "metadata.json").read_text())
    fields: dict[str, Any] = {}
    series: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    logs = sorted(Path(folder).glob("data-*.log"), key=lambda p: int(p.stem.split("-")[1]))
    for log in logs:
        for line in log.read_text().splitlines():
            op = json.loads(line)["obj"]
            key, kind = "/".join(op["path"]), op["type"]
            if kind.startswith("Assign"):
                fields[key] = op["value"]
            elif kind in ("LogFloats", "LogStrings"):
                series[key] += [(v.get("step"), v["value"]) for v in op["values"]]
            elif kind in ("ClearFloatLog", "ClearStringLog"):
                series[key] = []
            elif kind == "AddStrings":
                fields.setdefault(key, set()).update(op["values"])
            elif kind == "UploadFile":
                fields[key] = op["file_path"]
    return meta, fields, dict(series)
