"""``sbcore sample``: sampling a finished (or stopped) run with the EMA weights of its latest checkpoint,
either from the run's own data (``n=N``) or translating the user's inputs (``input=FILE_OR_FOLDER``).

Inputs are an array file (``.npz``, ``.npy``, ``.pt``, ``.safetensors``, read like the ``arrays``
data source) of shape (N, *D) or one sample (*D), where D is the run's data shape; ``uint8`` arrays
are read as pixels 0..255. A folder of images is converted like an image data source: to the run's
channels (1: grayscale, 3: RGB) and size (shorter side scaled, centre crop), values in [-1, 1].
A plugin adds options of its own through `sbcore_sample_options`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sbcore.config import read_yaml_file, structure_config
from sbcore.data.arrays import SUFFIXES, read_arrays
from sbcore.data.image_folder import fit, list_images
from sbcore.data.pipes import check_run_pipes
from sbcore.errors import DataError, RunFolderError, UserError
from sbcore.io import checkpoint as ckpt
from sbcore.io import plots
from sbcore.io.files import atomic_write
from sbcore.metrics.translation import sample_in_chunks
from sbcore.plugins import get_plugins
from sbcore.process.base import ENDS
from sbcore.run import Run, choose_device
from sbcore.seeding import derive_seeds

USAGE = ("sbcore sample run=DIR [direction=forward|backward] [steps=K] [out=FILE.npz] [device=auto] "
         "(n=N [path=true] [seed=S] | input=FILE_OR_FOLDER [key=ARRAY])")
OPTIONS = ("run", "direction", "steps", "out", "device", "n", "path", "seed", "input", "key")


def load_trainer(run_dir: Path, device: str = "auto"):
    """Rebuild a run's trainer from its config.yaml and load the latest checkpoint's EMA weights.

    A config.yaml with ``pipe:`` URLs (shell commands) stops here unless ``SBCORE_ALLOW_PIPE=1``."""
    check_run_pipes(run_dir)
    plugins = get_plugins()
    config = structure_config(read_yaml_file(run_dir / "config.yaml"), plugins.registry)
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise RunFolderError(f"{run_dir / 'checkpoints'}: no checkpoint; the run has not saved one yet")
    run = Run(config=config, dir=run_dir, plugins=plugins, device=choose_device(device))
    trainer = plugins.registry.get("method", config.plugin)(run)
    trainer.setup()
    try:
        tensors, meta = ckpt.load_weights(found[-1])
    except ckpt.CheckpointError as exc:  # fall back to the newest checkpoint that reads, as resume does
        good = ckpt.last_good(run_dir / "checkpoints")
        if good is None:
            raise
        print(f"sbcore: warning: {exc}; using {good.name}", file=sys.stderr)
        tensors, meta = ckpt.load_weights(good)
    ema = {k[4:]: t for k, t in tensors.items() if k.startswith("ema/")}
    trainer.networks.load_state_dict(ema)
    trainer.networks.eval()
    return trainer, meta


def read_image_folder(folder: Path, shape: tuple[int, ...]) -> tuple[Tensor, list[str]]:
    """The images of `folder` (sorted) as (N, C, H, W) in [-1, 1] at the run's channels and size."""
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise DataError(f"input={folder}: a folder of images needs a run on images (1 or 3, H, W); "
                    f"this run's data has shape {shape}")
    from torchvision.transforms.v2 import functional as F  # noqa: N812 - imported when used (startup)

    channels, height, width = shape
    files, _, _ = list_images(folder, None)
    images = []
    for file in files:
        try:
            with Image.open(file) as img:
                pixels = F.pil_to_tensor(img.convert("RGB" if channels == 3 else "L"))
        except OSError as exc:
            raise DataError(f"{file}: not a readable image: {exc}") from None
        images.append(fit(pixels, height, "shorter") if height == width
                      else F.resize(pixels, [height, width], antialias=True))
    return torch.stack(images).float() / 127.5 - 1.0, [f.relative_to(folder).as_posix() for f in files]


def read_input_array(file: Path, shape: tuple[int, ...], key: str | None = None) -> Tensor:
    """One array of `file` as float (N, *shape): its only array, `key`, or a single sample of `shape`."""
    try:
        arrays = read_arrays(file)
    except (OSError, ValueError) as exc:
        raise DataError(f"input={file}: {exc}") from None
    if key is None and len(arrays) != 1:
        raise DataError(f"input={file}: holds the arrays {sorted(arrays)}; choose one with key=NAME")
    if key is not None and key not in arrays:
        raise DataError(f"input={file}: has no array {key!r}; it holds {sorted(arrays)}")
    x = arrays[key] if key is not None else next(iter(arrays.values()))
    x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"input={file}: expected samples of shape {shape} (the run's data), "
                    f"given {tuple(x.shape[1:])} (array of shape {tuple(x.shape)})")
    return x


def read_inputs(path: Path, shape: tuple[int, ...], key: str | None = None) -> tuple[Tensor, list[str] | None]:
    """Inputs from an array file or an image folder, checked against the run's data shape."""
    if path.is_dir():
        return read_image_folder(path, shape)
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        raise DataError(f"input={path}: expected an array file ({', '.join(SUFFIXES)}) or a folder of images")
    return read_input_array(path, shape, key), None


def _parse(name: str, value: str, kind: type) -> Any:
    if kind is bool:
        if value not in ("true", "false"):
            raise UserError(f"{name}={value}: expected true or false")
        return value == "true"
    try:
        return kind(value)
    except ValueError:
        raise UserError(f"{name}={value}: expected {kind.__name__}") from None


def before_after(out: Path, inputs: Tensor, outputs: Tensor) -> Path | None:
    """The before/after picture beside `out`: image grids or a 2-D scatter (None for other data)."""
    picture = out.with_name(f"{out.stem}_grid.png")
    if inputs.ndim == 4:  # inputs shown at the outputs' size when a plugin option changed it (a resolution)
        from torchvision.transforms.v2 import functional as F  # noqa: N812 - imported when used (startup)

        shown = inputs if inputs.shape == outputs.shape else F.resize(inputs, list(outputs.shape[-2:]), antialias=True)
        return plots.before_after_grid(picture, shown, outputs)
    if inputs.ndim == 2 and inputs.shape[1] >= 2:
        return plots.scatter_2d(picture, source=inputs[:, :2], generated=outputs[:, :2], title="inputs -> outputs")
    return None


def sample_command(items: list[str]) -> int:
    """Run ``sbcore sample`` on its ``key=value`` items (see `USAGE`)."""
    opts = dict(item.split("=", 1) for item in items if "=" in item)
    stray = [item for item in items if "=" not in item]
    if stray or "run" not in opts:
        raise UserError(f"usage: {USAGE}" + (f"; not understood: {stray}" if stray else ""))
    run_dir = Path(opts["run"])
    if not run_dir.is_dir():
        raise UserError(f"run={run_dir}: run folder not found")
    trainer, _ = load_trainer(run_dir, opts.get("device", "auto"))
    extra: dict[str, tuple[type, str]] = {}
    for found in trainer.run.plugins.hook.sbcore_sample_options(run=trainer.run):
        extra.update(found or {})
    if unknown := sorted(set(opts) - set(OPTIONS) - set(extra)):
        valid = ", ".join([*OPTIONS, *(f"{k} ({t.__name__}: {h})" for k, (t, h) in extra.items())])
        raise UserError(f"sbcore sample: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    options = {k: _parse(k, opts[k], extra[k][0]) for k in extra if k in opts}
    # a run that trained one direction (I2SB restores x1 -> x0) samples it by default
    direction = opts.get("direction", trainer.directions[0] if len(trainer.directions) == 1 else "forward")
    if direction not in trainer.directions:
        raise UserError(f"direction={direction}: this run trained {', '.join(trainer.directions)}")
    start, end = ENDS[direction]
    steps = _parse("steps", opts["steps"], int) if "steps" in opts else None
    seed = _parse("seed", opts.get("seed", "0"), int)
    torch_seed, data_seed = derive_seeds(seed)
    names = None
    if "input" in opts:
        shape = tuple(trainer.draw(start, 1, torch.Generator().manual_seed(data_seed)).shape[1:])
        inputs, names = read_inputs(Path(opts["input"]), shape, opts.get("key"))
        keep_path = False
    else:
        inputs = trainer.draw(start, _parse("n", opts.get("n", "1000"), int), torch.Generator().manual_seed(data_seed))
        keep_path = _parse("path", opts.get("path", "false"), bool)
    torch.manual_seed(torch_seed)
    traj = sample_in_chunks(trainer, direction, inputs, steps=steps, return_path=keep_path, **options)
    out = Path(opts.get("out", run_dir / f"samples_{direction}.npz"))
    arrays = {start: inputs.numpy(), end: traj.x.numpy(), "nfe": np.array(traj.nfe)}
    if traj.path is not None:
        arrays["path"] = traj.path.numpy()
    if names is not None:
        arrays["names"] = np.array(names)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: np.savez(tmp, **arrays))
    print(f"wrote {out}: {start} {tuple(inputs.shape)} -> {end} {tuple(traj.x.shape)}, nfe {traj.nfe}"
          + (f", path {tuple(traj.path.shape)}" if traj.path is not None else ""))
    if "input" in opts and (picture := before_after(out, inputs, traj.x)) is not None:
        print(f"wrote {picture}")
    return 0
