"""Scores of an image translation between MNIST digits and EMNIST letters A-E on held-out images.

Inputs are the first `n` MNIST **test** digits (the order of the file, so every run sees the same digits)
and the letters A-E of the digits CNN's held-out letter split (`sbcore.metrics.digits.load_domain`; the
offline EMNIST file ships one split, of which the letters source's ``split: test`` is this held-out fifth,
so the recipes, which train on ``split: train``, never see these letters). Every score is computed on the
CNN's 28 x 28 view in [-1, 1] (`to_cnn_input`), so runs at 28 and 32 px compare:

* domain_accuracy: fraction of outputs the digits CNN assigns to the target domain;
* class_accuracy: the stricter fraction whose single most probable CNN class is one of the target's recipe
  classes (letters A-E, digits 0-9), so a "1"-like stroke is no letter;
* feature_distance: Fréchet distance of the CNN features of the outputs to the target's first REFERENCE
  held-out images (not Inception FID), beside its floor, the same distance from as many training images;
* msd: mean over pixels and images of (output - input)^2, beside msd_random, the same for random
  input-target pairs (a translation that keeps the input's layout is below it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor

from sbcore.config import structure_config
from sbcore.config_text import merge, read_yaml_file
from sbcore.errors import UserError
from sbcore.io.files import atomic_write
from sbcore.io.plots import before_after_grid
from sbcore.metrics.digits import (
    OFFSETS,
    class_set_accuracy,
    domain_accuracy,
    feature_distance,
    load_domain,
    to_cnn_input,
)
from sbcore.options import option, parse_options, positive

#: EMNIST letters A-E, the classes of the recipes.
LETTER_CLASSES = 5
#: held-out target images the feature distance compares with (all 800 held-out letters A-E; 2000 digits).
REFERENCE = 2000


def held_out(domain: str, split: str = "test", n: int | None = None) -> Tensor:
    """Images (N, 1, 28, 28) in [-1, 1] of `domain`'s split; letters keep A-E; the first `n`."""
    images, labels = load_domain(domain, split)
    if domain == "letters":
        images = images[labels < OFFSETS["letters"] + LETTER_CLASSES]
    return images[:n] if n is not None else images


def to_run_shape(images: Tensor, shape: tuple[int, ...]) -> Tensor:
    """28 x 28 images in [-1, 1] zero-padded (background -1) to a 32 x 32 run's shape when needed."""
    pad = (shape[-1] - images.shape[-1]) // 2
    return torch.nn.functional.pad(images, (pad, pad, pad, pad), value=-1.0) if pad > 0 else images


def target_classes(domain: str) -> list[int]:
    """The CNN's global class indices of a recipe side: digits 0-9, or letters A-E."""
    count = LETTER_CLASSES if domain == "letters" else 10
    return [OFFSETS[domain] + c for c in range(count)]


def score(inputs: Tensor, outputs: Tensor, target: str, generator: torch.Generator) -> dict[str, float]:
    """Domain accuracy, feature distance (with its floor) and msd (with random pairs') of one direction."""
    x, y = to_cnn_input(inputs), to_cnn_input(outputs)
    test, train = held_out(target, "test", REFERENCE), held_out(target, "train")  # REFERENCE read at call time
    pairs = test[torch.randint(len(test), (len(x),), generator=generator)]
    floor_train = train[torch.randperm(len(train), generator=generator)[: len(test)]]
    return {
        "n": float(len(x)),
        "domain_accuracy": domain_accuracy(y, target),
        "class_accuracy": class_set_accuracy(y, target_classes(target)),
        "feature_distance": feature_distance(y, test),
        "feature_floor": feature_distance(floor_train, test),
        "msd": float((y - x).square().mean()),
        "msd_random": float((pairs - x).square().mean()),
    }


# ---- `sbcore bench images plugin=P`: train the recipe, score it on held-out images, one table row ----------


#: plugin -> its recipe(s) under examples/ (ddib: the digits model, then the letters model).
RECIPES: dict[str, tuple[str, ...]] = {
    "dsbm": ("dsbm/mnist_letters_cpu.yaml",),
    "sdsb": ("sdsb/mnist_letters_cpu.yaml",),
    "dbfs": ("dbfs/mnist_letters_cpu.yaml",),
    "ddib": ("ddib/digits_cpu.yaml", "ddib/letters_cpu.yaml"),
}
#: the table's columns: (key, heading).
COLUMNS = (
    ("plugin", "method"), ("minutes", "training wall time (min)"), ("steps", "steps"),
    ("forward/domain_accuracy", "digits -> letters domain acc."),
    ("backward/domain_accuracy", "letters -> digits domain acc."),
    ("forward/class_accuracy", "top class in A-E"), ("backward/class_accuracy", "top class in 0-9"),
    ("forward/feature_distance", "feature dist. to letters (floor)"),
    ("backward/feature_distance", "feature dist. to digits (floor)"),
    ("forward/msd", "MSD digits -> letters (random pairs)"),
    ("backward/msd", "MSD letters -> digits (random pairs)"),
)


def _known_plugin(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in RECIPES:
        raise ValueError(f"expected one of {sorted(RECIPES)}, got {value!r}")


@attrs.frozen(kw_only=True)
class ImagesOptions:
    plugin: str = option(help="the method whose recipe runs: dsbm, sdsb, dbfs or ddib", validator=_known_plugin)
    config: list[Path] = option(factory=list, help="recipe file(s), comma-separated; default: RECIPES[plugin] "
                                "under examples/ (ddib: the digits run, then the letters run)")
    n: int = option(1000, help="MNIST test digits translated (the first n of the file)", validator=positive)
    out: Path = option(Path("runs/bench_images"), help="folder of the runs, the row and the picture")
    train: bool = option(True, help="false: score the runs already in out (from an earlier bench)")
    set: dict[str, Any] = option(factory=dict, help="overrides of every recipe: set.train.steps=100")
    guidance: dict[str, Any] = option(factory=dict, help="ddib: guidance.scale=S decodes each input towards a "
                                      "class drawn at random from the class-conditional decoding run's data")

    def __attrs_post_init__(self) -> None:
        if self.guidance and self.plugin != "ddib":
            raise ValueError(f"guidance: only ddib's decoding is guided here, not {self.plugin}'s")


def _configs(opts: ImagesOptions) -> list[Path]:
    files = opts.config or [Path("examples") / name for name in RECIPES[opts.plugin]]
    if len(files) != len(RECIPES[opts.plugin]):
        raise UserError(f"config: {opts.plugin} takes {len(RECIPES[opts.plugin])} recipe file(s), got {len(files)}")
    if missing := [str(f) for f in files if not f.is_file()]:
        raise UserError(f"config: recipe file(s) {missing} not found (run from the repository root, or give config=)")
    return files


def train_recipe(path: Path, opts: ImagesOptions, plugins: Any) -> tuple[Path, float, int]:
    """Run one recipe into opts.out; (run folder, wall seconds, steps)."""
    from sbcore.run import prepare_run

    raw = merge(read_yaml_file(str(path)), {**opts.set, "out": str(opts.out)})
    config = structure_config(raw, plugins.registry)
    if config.plugin != opts.plugin:
        raise UserError(f"config: {path} is a {config.plugin} recipe, not {opts.plugin}")
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    run, trainer, lock = prepare_run(config, str(path), plugins)
    started = time.perf_counter()
    with lock:
        trainer.fit()
    return run.dir, time.perf_counter() - started, trainer.step


def sampling_directions(data: dict[str, Any]) -> tuple[str, str]:
    """The run's sampling directions (digits -> letters, letters -> digits): a recipe may put the letters on
    either side (`data.x0` is the side a method starts from, e.g. S-DSB's flow-matching epoch)."""
    letters_first = (data.get("x0") or {}).get("source") == "emnist_letters"
    return ("backward", "forward") if letters_first else ("forward", "backward")


def translate_held_out(runs: list[Path], plugin: str, n: int, guidance: dict[str, Any] | None = None
                       ) -> dict[str, tuple[Tensor, Tensor]]:
    """direction -> (inputs, outputs) for the first n MNIST test digits and the held-out letters A-E; ddib with
    `guidance` decodes each input towards a random class of the decoding run (`uniform_labels`)."""
    from sbcore.metrics.translation import sample_in_chunks
    from sbcore.sample import load_trainer
    from sbcore.sampler.guidance import make_guidance, uniform_labels

    trainers = [load_trainer(run)[0] for run in runs]
    shape = tuple(trainers[0].shape)
    digits = to_run_shape(held_out("digits", "test", n), shape)
    letters = to_run_shape(held_out("letters", "test", n), shape)
    torch.manual_seed(0)
    if plugin == "ddib":  # encode with the source domain's model, decode with the target's (Su et al. 2023, Alg. 1)
        source, target = trainers

        def through(first: Any, second: Any, x: Tensor) -> Tensor:
            latent = sample_in_chunks(first, "forward", x, progress=False).x
            decode = {}
            if guidance:
                labels = uniform_labels(second.sources["x0"], len(x), torch.Generator().manual_seed(1))
                decode["guidance"] = make_guidance(labels, guidance, second.run.registry, second.device)
            return sample_in_chunks(second, "backward", latent, progress=False, **decode).x

        return {"forward": (digits, through(source, target, digits)),
                "backward": (letters, through(target, source, letters))}
    (trainer,) = trainers
    to_letters, to_digits = sampling_directions(trainer.run.config_dict()["data"])
    return {"forward": (digits, sample_in_chunks(trainer, to_letters, digits, progress=False).x),
            "backward": (letters, sample_in_chunks(trainer, to_digits, letters, progress=False).x)}


def format_row(row: dict[str, Any]) -> str:
    """One markdown table row (with the header above it) of a bench record."""

    def cell(key: str) -> str:
        if key in ("plugin", "steps"):
            return str(row[key])
        if key == "minutes":
            return f"{row['seconds'] / 60:.1f}"
        value = row[key]
        direction, metric = key.split("/")
        if metric in ("domain_accuracy", "class_accuracy"):
            return f"{value:.3f}"
        other = row[f"{direction}/{'feature_floor' if metric == 'feature_distance' else 'msd_random'}"]
        return f"{value:.3g} ({other:.3g})"

    header = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    return "\n".join([header, rule, "| " + " | ".join(cell(k) for k, _ in COLUMNS) + " |"])


def run_bench(opts: ImagesOptions) -> dict[str, Any]:
    """Train (or reuse) the recipe's runs, score both directions on held-out images, write row and picture."""
    from sbcore.plugins import get_plugins

    files = _configs(opts)
    plugins = get_plugins()
    runs, seconds, steps = [], 0.0, 0
    for path in files:
        if opts.train:
            run, wall, done = train_recipe(path, opts, plugins)
        else:
            name = structure_config(read_yaml_file(str(path)), plugins.registry).name or path.stem
            run, wall, done = opts.out / name, float("nan"), 0
            if not run.is_dir():
                raise UserError(f"train=false: {run} not found; run the bench with train=true first")
        runs.append(run)
        seconds, steps = seconds + wall, steps + done
    generator = torch.Generator().manual_seed(0)
    pairs = translate_held_out(runs, opts.plugin, opts.n, opts.guidance)
    row: dict[str, Any] = {"plugin": opts.plugin, "recipes": [str(f) for f in files], "runs": [str(r) for r in runs],
                           "seconds": seconds, "steps": steps}
    for direction, (x, y) in pairs.items():
        target = "letters" if direction == "forward" else "digits"
        row.update({f"{direction}/{k}": v for k, v in score(x, y, target, generator).items()})
    folder = opts.out / opts.plugin
    folder.mkdir(parents=True, exist_ok=True)
    before = torch.cat([pairs["forward"][0][:8], pairs["backward"][0][:8]])
    after = torch.cat([pairs["forward"][1][:8], pairs["backward"][1][:8]])
    row["picture"] = str(before_after_grid(folder / "bench_images.png", before, after.clamp(-1, 1), rows=2))
    atomic_write(folder / "bench_images.json", lambda tmp: Path(tmp).write_text(json.dumps(row, indent=1) + "\n"))
    atomic_write(folder / "bench_images.md", lambda tmp: Path(tmp).write_text(format_row(row) + "\n"))
    return row


def bench_images(items: list[str]) -> int:
    """`sbcore bench images plugin=P ...` (ImagesOptions)."""
    opts = parse_options("sbcore bench images", ImagesOptions, items)
    row = run_bench(opts)
    print(format_row(row))
    print(f"wrote {opts.out / opts.plugin}/bench_images.{{md,json,png}}")
    return 0
