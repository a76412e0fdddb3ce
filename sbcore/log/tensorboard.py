"""TensorBoard logger plugin (``log.tensorboard.enabled=true``; needs the ``tensorboard`` extra).

Event files go to ``<run>/tensorboard`` (view with ``tensorboard --logdir runs``): the config as
text, every logged metric as a scalar at its step, evaluation pictures as images, and the summary
as ``summary/*`` scalars plus a JSON text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sbcore.errors import require
from sbcore.hookspecs import hookimpl
from sbcore.log.common import PictureWatch, scalars

_open: dict[Path, tuple[Any, PictureWatch]] = {}


def _add_pictures(writer: Any, watch: PictureWatch, step: int) -> None:
    from PIL import Image

    for path in watch.new():
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        writer.add_image(f"pictures/{path.stem}", pixels, global_step=step, dataformats="HWC")


@hookimpl
def sbcore_run_start(run: Any) -> None:
    if not (run.config.log.tensorboard.enabled and run.is_main) or run.dir in _open:
        return
    require("tensorboard", "tensorboard", "log.tensorboard.enabled")  # torch's writer needs it
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run.dir / "tensorboard"))
    config = yaml.safe_dump(run.config_dict(), sort_keys=False)
    writer.add_text("config", "    " + config.replace("\n", "\n    "))
    _open[run.dir] = (writer, PictureWatch(run.dir))


@hookimpl
def sbcore_step_end(run: Any, step: int, metrics: dict[str, Any]) -> None:
    if run.dir not in _open:
        return
    writer, watch = _open[run.dir]
    for key, value in scalars(metrics).items():
        writer.add_scalar(key, value, global_step=step)
    if any(k.startswith("eval/") for k in metrics):
        _add_pictures(writer, watch, step)


@hookimpl
def sbcore_checkpoint_saved(run: Any) -> None:
    if run.dir in _open:
        _open[run.dir][0].flush()


@hookimpl
def sbcore_run_end(run: Any, summary: dict[str, Any]) -> None:
    if run.dir not in _open:
        return
    writer, watch = _open.pop(run.dir)
    step = int(summary.get("step", 0))
    _add_pictures(writer, watch, step)
    for key, value in scalars(summary).items():
        writer.add_scalar(f"summary/{key}", value, global_step=step)
    writer.add_text("summary", json.dumps(summary, default=str))
    writer.close()


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a run's event files: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
