"""``sbcore sample``: sampling a finished (or stopped) run with the EMA weights of its latest checkpoint,
either from the run's own data (``n=N``) or translating the user's inputs (``input=FILE_OR_FOLDER``).

Inputs are an array file (``.npz``, ``.npy``, ``.pt``, ``.safetensors``, read like the ``arrays``
data source) of shape (N, *D) or one sample (*D), where D is the run's data shape; ``uint8`` arrays
are read as pixels 0..255. A folder of images is converted like an image data source: to the run's
channels (1: grayscale, 3: RGB) and size (shorter side scaled, centre crop), values in [-1, 1].
A plugin adds options of its own through `sbcore_sample_options`. A run records its data's shape at
start (``data.json``), so translating inputs needs only the run folder; an older run rebuilds its data.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch
from torch import Tensor

from sbcore.config import structure_config
from sbcore.config_text import ConfigError, merge, read_yaml_file
from sbcore.data.arrays import SUFFIXES, read_arrays
from sbcore.data.image_folder import fit, list_images, read_image
from sbcore.data.pipes import check_run_pipes
from sbcore.errors import DataError, RunFolderError, SbcoreError, UserError
from sbcore.io import checkpoint as ckpt
from sbcore.io import plots
from sbcore.io.files import atomic_write
from sbcore.metrics.eval_data import Split, evaluation_data
from sbcore.metrics.translation import pixels, sample_in_chunks
from sbcore.options import (
    check_extra,
    existing_dir,
    existing_path,
    option,
    parse_options,
    positive,
    suffix,
    with_extra,
)
from sbcore.plugins import call_each, get_plugins
from sbcore.process.base import ENDS
from sbcore.run import Run, choose_device
from sbcore.seeding import derive_seeds

COMMAND = "sbcore sample"
#: what a run records of its data at start (`record_data`), so ``input=`` needs only the run folder.
DATA_RECORD = "data.json"


@attrs.frozen(kw_only=True)
class SampleOptions:
    """``sbcore sample``'s options (a plugin adds its own through `sbcore_sample_options`)."""

    run: Path = option(help="the run folder", validator=existing_dir)
    n: int | Literal["all"] | None = option(
        None, help="inputs drawn from the run's evaluation data (default 1000), or all of its items",
        validator=positive)
    input: Path | None = option(None, help="an array file or a folder of images to translate instead",
                                validator=existing_path)
    key: str | None = option(None, help="the array of input= to translate when the file holds several")
    out: Path | None = option(None, help="the .npz to write (default RUN/samples_DIRECTION.npz)",
                              validator=suffix(".npz"))
    direction: Literal["forward", "backward"] | None = option(
        None, help="forward (x0 -> x1) or backward; default the run's only direction, else forward")
    steps: int | None = option(None, help="sampler steps (the run's by default)", validator=positive)
    path: bool = option(False, help="keep every step of each trajectory (n= only)")
    seed: int = option(0, help="seed of the inputs drawn and the sampler's noise")
    split: Split = option("test", help="draw n= inputs from the held-out (test) or the training items")
    device: str = option("auto", help="auto, cpu or cuda[:K]")
    sampler: dict[str, Any] = option(factory=dict, help="sampler.kind=NAME and sampler.PARAM=VALUE overrides")
    eval: dict[str, Any] = option(factory=dict, help="eval.data.SIDE.KEY=VALUE and eval.output=final|predicted_end")

    def __attrs_post_init__(self) -> None:
        check_eval_overrides(self.eval, ("data", "output"))
        if self.input is not None and self.n is not None:
            raise ValueError("n= and input= exclude each other: n= draws inputs from the run's data, input= "
                             "translates yours")
        if self.key is not None and self.input is None:
            raise ValueError("key= chooses an array of input=; give input=FILE")
        if self.input is not None and self.path:
            raise ValueError("path=true keeps trajectories of n= samples; it does not apply to input=")


def check_eval_overrides(given: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """``eval.*`` items: known keys, and ``eval.output`` one of its values (the rest is checked with the config)."""
    if unknown := sorted(set(given) - set(allowed)):
        raise ValueError(f"eval: unknown key(s) {unknown}; this command takes eval.{', eval.'.join(allowed)}")
    if "output" in given and given["output"] not in ("final", "predicted_end"):
        raise ValueError(f"eval.output: expected final or predicted_end, got {given['output']!r}")


def sampler_overrides(saved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The run's ``sampler`` section with `given` applied: another kind starts from that kind's defaults
    (the run's parameters belong to its own sampler), the same kind keeps the run's other parameters."""
    if "kind" in given and given["kind"] != saved.get("kind"):
        return dict(given)
    return {**saved, **given}


@contextlib.contextmanager
def chosen_sampler(given: dict[str, Any] | None) -> Iterator[None]:
    """A sampler chosen on the command line (``sampler.*``) that cannot integrate this run's process or
    prediction is the user's choice to fix, named in one line, not a crash of the sampler's code."""
    try:
        yield
    except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as exc:
        if not given or isinstance(exc, (SbcoreError, ConfigError)):
            raise
        kind = given.get("kind", "the run's sampler with " + ", ".join(f"{k}={v}" for k, v in given.items()))
        raise UserError(f"sampler.kind={kind} cannot sample this run: {str(exc).splitlines()[0]}") from exc


def run_config(run_dir: Path, sampler: dict[str, Any] | None = None, eval_section: dict[str, Any] | None = None,
               stand_in: bool = False) -> Any:
    """A run's config.yaml with command overrides (``sampler.*``, ``eval.*``); with `stand_in`, the data
    sections replaced by zeros of the shape the run recorded (`record_data`) when it recorded one."""
    plugins = get_plugins()
    raw = read_yaml_file(run_dir / "config.yaml")
    if sampler:
        raw["sampler"] = sampler_overrides(raw.get("sampler") or {}, sampler)
    if eval_section:
        raw["eval"] = merge(raw.get("eval") or {}, eval_section)
    record = run_dir / DATA_RECORD
    if stand_in and record.is_file():
        recorded = json.loads(record.read_text())
        raw["data"] = {side: {"source": "shape_only", "dims": recorded["shape"], "value_range": recorded["value_range"],
                              "paired": side == "pairs"}
                       for side, spec in (raw.get("data") or {}).items() if spec}
    return structure_config(raw, plugins.registry)


def record_data(trainer: Any) -> None:
    """Write the run's data shape and value range beside config.yaml (``sbcore sample input=`` reads it)."""
    shape = getattr(trainer, "shape", None)
    if shape is None:
        return
    sources = [s for s in (*(getattr(trainer, "sources", None) or {}).values(), getattr(trainer, "pairs", None),
                           getattr(trainer, "clean", None)) if s is not None]
    value_range = next((list(s.value_range) for s in sources if getattr(s, "value_range", None)), None)
    text = json.dumps({"shape": list(shape), "value_range": value_range}) + "\n"
    atomic_write(trainer.run.dir / DATA_RECORD, lambda tmp: Path(tmp).write_text(text))


def load_trainer(run_dir: Path, device: str = "auto", sampler: dict[str, Any] | None = None,
                 eval_section: dict[str, Any] | None = None, stand_in: bool = False):
    """Rebuild a run's trainer from its config.yaml (with command overrides, `run_config`) and load the
    latest checkpoint's EMA weights.

    A config.yaml with ``pipe:`` URLs (shell commands) stops here unless ``SBCORE_ALLOW_PIPE=1``."""
    check_run_pipes(run_dir)
    plugins = get_plugins()
    config = run_config(run_dir, sampler, eval_section, stand_in)
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise RunFolderError(f"{run_dir / 'checkpoints'}: no checkpoint; the run has not saved one yet")
    run = Run(config=config, dir=run_dir, plugins=plugins, device=choose_device(device))
    trainer = plugins.registry.get("method", config.plugin)(run)
    try:
        trainer.setup()
    except (ValueError, OSError) as exc:  # what components raise for bad parameters (a sampler override)
        if isinstance(exc, (SbcoreError, ConfigError)):
            raise
        raise UserError(f"cannot rebuild the run: {exc}") from None
    trainer.check_components()
    path = found[-1]
    try:
        tensors, meta = ckpt.load_weights(path)
    except ckpt.CheckpointError as exc:  # fall back to the newest checkpoint that reads, as resume does
        good = ckpt.last_good(run_dir / "checkpoints")
        if good is None:
            raise
        print(f"sbcore: warning: {exc}; using {good.name}", file=sys.stderr)
        path = good
        tensors, meta = ckpt.load_weights(good)
    ema = {k[4:]: t for k, t in tensors.items() if k.startswith("ema/")}
    ckpt.load_into(trainer.networks, ema, path)
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
        pixels = read_image(file, channels)
        images.append(fit(pixels, height, "shorter") if height == width
                      else F.resize(pixels, [height, width], antialias=True))
    return torch.stack(images).float() / 127.5 - 1.0, [f.relative_to(folder).as_posix() for f in files]


def to_sample_layout(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """`x` as (N, *shape) where the layout is unambiguous: one sample without its batch axis; for an image run
    (C, H, W), grayscale images stored (N, H, W) as MNIST ships them, and images stored channels-last (N, H, W, C)
    as numpy and PIL hold them. Anything else is left for the caller's shape check."""
    if tuple(x.shape) == shape:
        return x.unsqueeze(0)
    if len(shape) != 3 or shape[0] not in (1, 3):
        return x
    channels, height, width = shape
    if channels == 1 and tuple(x.shape[1:]) == (height, width):
        return x.unsqueeze(1)
    if x.ndim == 4 and tuple(x.shape[1:]) == (height, width, channels):
        return x.permute(0, 3, 1, 2).contiguous()
    return x


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
    x = to_sample_layout(x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float(), shape)
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"input={file}: expected samples of shape {shape} (the run's data), "
                    f"given {tuple(x.shape[1:])} (array of shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"input={file}: holds NaN or infinite values ({int((~torch.isfinite(x)).sum())} of "
                        f"{x.numel()}); the samples would be NaN too")
    return x


def read_inputs(path: Path, shape: tuple[int, ...], key: str | None = None) -> tuple[Tensor, list[str] | None]:
    """Inputs from an array file or an image folder, checked against the run's data shape."""
    if path.is_dir():
        return read_image_folder(path, shape)
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        raise DataError(f"input={path}: expected an array file ({', '.join(SUFFIXES)}) or a folder of images")
    return read_input_array(path, shape, key), None


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


def split_known(items: list[str], schema: type) -> tuple[list[str], list[str]]:
    """(items naming an option of `schema`, the others: a plugin's options, or mistakes)."""
    names = {f.name for f in attrs.fields(schema)}
    known = [i for i in items if "=" not in i or i.split("=", 1)[0].partition(".")[0].strip() in names]
    return known, [i for i in items if i not in known]


def sample_command(items: list[str]) -> int:
    """Run ``sbcore sample`` on its ``key=value`` items (`SampleOptions`, checked before anything is read)."""
    known, rest = split_known(items, SampleOptions)
    opts = parse_options(COMMAND, SampleOptions, known)
    with chosen_sampler(opts.sampler):
        trainer, _ = load_trainer(opts.run, opts.device, opts.sampler, opts.eval, stand_in=opts.input is not None)
    extra: dict[str, tuple[type, str]] = {}
    for _, found in call_each(trainer.run.plugins, "sbcore_sample_options", check=check_extra, run=trainer.run):
        extra.update(found)
    if rest:
        opts = parse_options(COMMAND, with_extra(SampleOptions, extra), items)
    options = {k: getattr(opts, k) for k in extra if getattr(opts, k, None) is not None}
    # a run that trained one direction (I2SB restores x1 -> x0) samples it by default
    direction = opts.direction or (trainer.directions[0] if len(trainer.directions) == 1 else "forward")
    if direction not in trainer.directions:
        raise UserError(f"direction={direction}: this run trained {', '.join(trainer.directions)}")
    start, end = ENDS[direction]
    torch_seed, data_seed = derive_seeds(opts.seed)
    names, split = None, None
    output = trainer.run.config.eval.output
    if opts.input is not None:
        if trainer.run.config.data.latent is not None:
            raise UserError("input= of a latent bridge (data.latent) is not supported; sample it with n=N")
        inputs, names = read_inputs(opts.input, tuple(trainer.shape), opts.key)
    else:
        n = opts.n or 1000
        with evaluation_data(trainer, opts.split, every_item=n == "all") as used:
            inputs = trainer.draw(start, used.total if n == "all" else n, torch.Generator().manual_seed(data_seed))
        split = used.split
    torch.manual_seed(torch_seed)
    with chosen_sampler(opts.sampler):
        traj = sample_in_chunks(trainer, direction, inputs, steps=opts.steps, return_path=opts.path, output=output,
                                **options)
    if trainer.latent_codec() is not None:  # a latent bridge: inputs and outputs saved as pixels, a path as codes
        inputs, traj = pixels(trainer, inputs), attrs.evolve(traj, x=pixels(trainer, traj.x))
    out = opts.out or opts.run / f"samples_{direction}.npz"
    arrays = {start: inputs.numpy(), end: traj.x.numpy(), "nfe": np.array(traj.nfe)}
    if traj.path is not None:
        arrays["path"] = traj.path.numpy()
    if names is not None:
        arrays["names"] = np.array(names)
    if split is not None:
        arrays["split"] = np.array(split)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: np.savez(tmp, **arrays))
    print(f"wrote {out}: {start} {tuple(inputs.shape)}" + (f" ({split} split)" if split else "")
          + f" -> {end} {tuple(traj.x.shape)}" + (" (predicted ends)" if output == "predicted_end" else "")
          + f", nfe {traj.nfe}" + (f", path {tuple(traj.path.shape)}" if traj.path is not None else ""))
    if opts.input is not None and (picture := before_after(out, inputs, traj.x)) is not None:
        print(f"wrote {picture}")
    return 0
