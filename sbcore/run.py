"""A run: its resolved config, its directory, the loaded plugins and the device.

`prepare_run` is the order every launcher follows, so that a failure never leaves a half-made
run folder: check the device, build the trainer (data sources open and validate, networks build),
compare a resumed run's saved config with the new one, and only then create the folder, take its
lock and write ``config.yaml`` atomically.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import torch
import yaml

from sbcore.config import Config, make_converter
from sbcore.config_text import ConfigError
from sbcore.errors import DeviceError, RunFailure, RunFolderError, SbcoreError, UserError
from sbcore.io.files import atomic_write
from sbcore.plugins import Plugins
from sbcore.registry import UnknownComponentError

#: sections whose change alters what a checkpoint's weights mean; a resume refuses them unless ``resume=force``.
CHECKPOINT_SECTIONS = ("plugin", "method", "process", "network", "data")
LOCK_FILE = ".lock"


@attrs.define
class Run:
    config: Config
    dir: Path
    plugins: Plugins
    device: torch.device
    summary: dict[str, Any] = attrs.field(factory=dict)
    #: plugins whose lifecycle hooks raised and were switched off for this run.
    disabled: set[str] = attrs.field(factory=set)

    @property
    def registry(self) -> Any:
        return self.plugins.registry

    @property
    def hook(self) -> Any:
        return self.plugins.hook

    @property
    def is_main(self) -> bool:
        return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0

    def echo(self, text: str) -> None:
        """Print a line on the main process without breaking the progress bar."""
        if self.is_main and self.config.log.console:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stdout)

    def call_hook(self, name: str, **kwargs: Any) -> list[Any]:
        """Call a lifecycle hook (with ``run=self``) one implementation at a time; returns their non-None results.

        An implementation that raises is reported once and its plugin's lifecycle hooks are off for
        the rest of the run, so a broken logger cannot stop training; with ``log.strict`` it stops
        the run instead. sbcore's own errors (a missing dependency, a bad metric name) always stop it.
        """
        kwargs["run"] = self
        results = []
        for impl in reversed(getattr(self.plugins.hook, name).get_hookimpls()):  # pluggy's LIFO order
            if impl.plugin_name in self.disabled:
                continue
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except (SbcoreError, ConfigError, UnknownComponentError):
                raise
            except Exception as exc:
                what = f"plugin {impl.plugin_name!r}: {name} raised {type(exc).__name__}: {exc}"
                if self.config.log.strict:
                    raise RunFailure(f"{what} (log.strict=true stops the run)") from exc
                self.disabled.add(impl.plugin_name)
                print(f"sbcore: warning: {what}; its hooks are off for the rest of this run", file=sys.stderr)
                continue
            if result is not None:
                results.append(result)
        return results

    def config_dict(self) -> dict[str, Any]:
        return make_converter(self.registry).unstructure(self.config)

    def write_config(self) -> Path:
        text = yaml.safe_dump(self.config_dict(), sort_keys=False)
        return atomic_write(self.dir / "config.yaml", lambda tmp: Path(tmp).write_text(text))


def choose_device(name: str) -> torch.device:
    """``auto`` (CUDA when present) or a device this machine has; otherwise a `DeviceError` saying what it has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"train.device: {name!r} is not a device name; "
                          "expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise DeviceError(f"train.device: {name!r} is not available here ({count} CUDA device(s)); "
                              "use train.device=cpu or auto")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"train.device: {name!r} is not available here; use train.device=cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"train.device: {name!r} is not supported; expected auto, cpu, cuda, cuda:N or mps")
    return device


def run_dir_for(config: Config, config_path: str | None) -> Path:
    """`out/name`; a fresh run never reuses a folder (suffixes -1, -2 ...), a resumed run must.

    The name must stay inside `out`: no absolute paths and no ``..``."""
    name = config.name or (Path(config_path).stem if config_path else config.plugin)
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise RunFolderError(f"name: {name!r} would put the run folder outside out={config.out!r}; "
                             "give a plain name such as 'moons'")
    base = Path(config.out) / name
    inside_out(base, config.out)
    if config.resume:
        return base
    path, i = base, 0
    while path.exists() or path.is_symlink():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def inside_out(path: Path, out: str | Path) -> None:
    """Refuse a run folder that symbolic links would place outside `out` (``out/link/run`` where
    ``out/link`` points elsewhere): a run writes only under the folder it was given."""
    root = Path(out).resolve()
    real = Path(path).resolve()
    if real != root and not real.is_relative_to(root):
        raise RunFolderError(f"{path}: resolves to {real}, outside out={str(out)!r} (a symbolic link?); "
                             "give a name whose folder lies inside out")


def claim_new_folder(run: Run, config_path: str | None) -> None:
    """Create a fresh run's folder atomically; another run that took the name first moves this one to
    the next free suffix (two runs started together never share a folder or fail on "File exists")."""
    for _ in range(100):
        try:
            run.dir.mkdir(parents=True, exist_ok=False)
            return
        except FileExistsError:
            run.dir = run_dir_for(run.config, config_path)
    raise RunFolderError(f"{run.dir}: could not create a new run folder (100 names taken at once)")


#: what a resumed run's folder may hold under these names: a file or a folder (absent is fine).
FOLDER_LAYOUT = {"config.yaml": "file", "metrics.jsonl": "file", "events.jsonl": "file", "checkpoints": "folder"}


def check_run_folder(run_dir: Path) -> None:
    """The run folder and its parts are what a resume reads and writes (a folder, its files), before
    anything is written: ``checkpoints`` turned into a file must not cost the metrics."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: exists but is not a run folder (not a folder)")
    for name, kind in FOLDER_LAYOUT.items():
        path = run_dir / name
        if path.is_symlink() or (path.exists() and path.is_dir() != (kind == "folder")):
            raise RunFolderError(f"{path}: expected a {kind}{' (not a link)' if path.is_symlink() else ''}; "
                                 "this run folder was changed by hand, so resume refuses to touch it")


def _flat(tree: Any, prefix: str) -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}.{key}"))
        return out or {prefix: {}}
    return {prefix: tree}


def config_differences(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: saved -> new`` for every difference in the sections that give checkpoints their meaning."""
    old_flat = {k: v for s in CHECKPOINT_SECTIONS for k, v in _flat(saved.get(s), s).items()}
    new_flat = {k: v for s in CHECKPOINT_SECTIONS for k, v in _flat(new.get(s), s).items()}
    missing = object()
    lines = []
    for key in sorted(old_flat.keys() | new_flat.keys()):
        before, after = old_flat.get(key, missing), new_flat.get(key, missing)
        if before != after:
            show = lambda v: "(absent)" if v is missing else json.dumps(v)  # noqa: E731
            lines.append(f"{key}: {show(before)} -> {show(after)}")
    return lines


def _check_resume(run: Run) -> None:
    """Refuse to resume with a config whose checkpoints would mean something else (unless ``resume=force``)."""
    path = run.dir / "config.yaml"
    if run.config.resume == "force" or not path.is_file():
        return
    from sbcore.config_text import load_yaml

    try:
        saved = load_yaml(path.read_text())
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise RunFolderError(f"{path}: cannot read the saved config ({exc}); resume=force replaces it") from None
    differences = config_differences(saved if isinstance(saved, dict) else {}, run.config_dict())
    if differences:
        raise RunFolderError(
            f"resume: the config differs from the one saved in {path} where checkpoints depend on it:\n  "
            + "\n  ".join(differences)
            + "\n  keep the saved values, start a new run (another name), or give resume=force to accept them")


class RunLock:
    """``.lock`` in the run folder (PID, host, time): one process per run folder at a time.

    A lock left by a process that is gone (same host, PID not running) is stale and taken over.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False

    def acquire(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None:
                    raise RunFolderError(
                        f"{self.path.parent} is in use by process {holder.get('pid')} on {holder.get('host')} "
                        f"(since {holder.get('since')}); wait for it to finish, or delete {self.path} "
                        "if that process is gone") from None
                self.path.unlink(missing_ok=True)  # stale
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise RunFolderError(f"cannot take the lock {self.path}; another process keeps replacing it")

    def _holder(self) -> dict[str, Any] | None:
        """The live holder of an existing lock, or None when the lock is stale."""
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # being written this instant, or left torn by a killed process
            return None if time.time() - self.path.stat().st_mtime > 10 else {"pid": "?", "host": "?", "since": "now"}
        if holder.get("host") != socket.gethostname():
            return holder  # cannot check another machine's processes
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid == os.getpid():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return holder
        return holder

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def prepare_run(
    config: Config, config_path: str | None, plugins: Plugins, device: torch.device | None = None
) -> tuple[Run, Any, RunLock]:
    """Check everything that can be checked, then create the run folder, lock it and write config.yaml.

    Returns the run, its prepared trainer (set up, networks registered) and the held lock. Nothing
    is written when a check fails: a resumed run keeps its config.yaml, a new run has no folder.
    """
    run_dir = run_dir_for(config, config_path)
    run = Run(config=config, dir=run_dir, plugins=plugins, device=device or choose_device(config.train.device))
    if config.resume:
        check_run_folder(run_dir)
        _check_resume(run)
    trainer = plugins.registry.get("method", config.plugin)(run)
    try:
        trainer.prepare()
        if config.resume:
            trainer.check_resume()  # the newest checkpoint reads and its weights fit, before any write
    except (ValueError, OSError) as exc:  # what data sources and setup raise for bad input
        if isinstance(exc, (SbcoreError, ConfigError, UnknownComponentError)):
            raise
        raise UserError(f"cannot set up the run: {exc}") from exc
    if config.resume:
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        claim_new_folder(run, config_path)
    lock = RunLock(run.dir).acquire()
    try:
        run.write_config()
    except BaseException:
        lock.release()
        raise
    return run, trainer, lock
