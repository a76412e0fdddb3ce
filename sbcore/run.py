"""A run: its resolved config, its directory, the loaded plugins and the device."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs
import torch
import yaml

from sbcore.config import Config, make_converter
from sbcore.plugins import Plugins


@attrs.define
class Run:
    config: Config
    dir: Path
    plugins: Plugins
    device: torch.device
    summary: dict[str, Any] = attrs.field(factory=dict)

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

    def config_dict(self) -> dict[str, Any]:
        return make_converter(self.registry).unstructure(self.config)

    def write_config(self) -> Path:
        path = self.dir / "config.yaml"
        path.write_text(yaml.safe_dump(self.config_dict(), sort_keys=False))
        return path


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_dir_for(config: Config, config_path: str | None) -> Path:
    """`out/name`; a fresh run never reuses a folder (suffixes -1, -2 ...), a resumed run must."""
    name = config.name or (Path(config_path).stem if config_path else config.plugin)
    base = Path(config.out) / name
    if config.resume:
        return base
    path, i = base, 0
    while path.exists():
        i += 1
        path = base.with_name(f"{name}-{i}")
    return path
