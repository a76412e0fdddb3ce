"""``sbcore translate``: DDIB between two independently trained runs (Su et al. 2023, Sec. 3, eq. (3)-(4)).

    latent = ODESolve(x; eps_source, t: 0 -> 1)     (encode: the source run, direction forward)
    y      = ODESolve(latent; eps_target, t: 1 -> 0) (decode: the target run, direction backward)

The runs share nothing but the latent convention: the same process (kind and schedule), so that "noise
at t = 1" means the same thing to both. That is checked; everything else that differs (network, data,
training) is listed. Both halves use one sampler (the source run's, `sampler=`/`steps=` override it).
The cycle x -> y -> x' (encode with the target, decode with the source) measures how far the two ODE
solves are from inverses: per-point L2 mean, median, 99th percentile and max (the reference prints only
the max, spec §2.4). A source or target may also be a diffusers DDPM folder (`sb_ddib.pretrained`): its
UNet and scheduler are a domain model, and with n=N its inputs are its own samples.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch
from torch import Tensor

from sb_ddib import guided
from sb_ddib.figures import translation_figure
from sbcore.config import SamplerSpec
from sbcore.errors import UserError
from sbcore.io import plots
from sbcore.io.files import atomic_write
from sbcore.metrics.digits import domain_accuracy, feature_distance
from sbcore.metrics.eval_data import evaluation_data
from sbcore.metrics.translation import sample_in_chunks
from sbcore.metrics.vector import sliced_wasserstein2
from sbcore.options import existing_dir, existing_path, option, parse_options, positive
from sbcore.sample import load_trainer, read_inputs
from sbcore.seeding import derive_seeds

USAGE = ("sbcore translate source=RUN_OR_DIFFUSERS_DIR target=RUN_OR_DIFFUSERS_DIR "
         "(input=FILE_OR_FOLDER [key=ARRAY] | n=N) [steps=S] "
         "[sampler=ddim|ddim_heun] [cycle=true] [seed=0] [device=auto] [out=DIR] "
         "[source_label=K] [target_label=K|random [guidance.scale=S] [guidance.classifier=FILE.safetensors]]")
#: config sections that say what a run's weights are; shown side by side when they differ.
COMPARED = ("data", "network", "method", "train", "sampler")


def cycle_stats(x: Tensor, back: Tensor) -> dict[str, float]:
    """Per-sample L2 distance between inputs and their round trip: mean, median, p99 and max."""
    err = (back.flatten(1).double() - x.flatten(1).double()).norm(dim=1)
    return {"mean": float(err.mean()), "median": float(err.median()),
            "p99": float(torch.quantile(err, 0.99)), "max": float(err.max())}


def same_process(a: dict[str, Any], b: dict[str, Any], registry: Any) -> bool:
    """Two process sections mean the same process: one kind and equal parameters once the constructor's
    defaults fill what a section leaves out (a diffusers folder's mapped floats within 1e-9)."""
    if a.get("kind") != b.get("kind"):
        return False
    signature = inspect.signature(registry.get("process", a["kind"]).__init__)
    defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not p.empty}
    full_a, full_b = {**defaults, **a}, {**defaults, **b}
    if full_a.keys() != full_b.keys():
        return False
    return all(x == y or (isinstance(x, float | int) and isinstance(y, float | int)
                          and math.isclose(x, y, rel_tol=1e-9)) for x, y in ((full_a[k], full_b[k]) for k in full_a))


def check_latent_convention(source: Any, target: Any) -> list[str]:
    """Refuse runs whose processes differ; return the other differences as lines 'key: A vs B'."""
    a, b = source.run.config_dict(), target.run.config_dict()
    if not same_process(a["process"], b["process"], source.run.registry):
        raise UserError(f"source and target do not share the latent convention: process {a['process']} "
                        f"vs {b['process']}; train both with the same process section")
    if tuple(source.shape) != tuple(target.shape):
        raise UserError(f"source data shape {tuple(source.shape)} differs from the target's {tuple(target.shape)}")
    lines = []
    for section in COMPARED:
        for key in sorted(set(a.get(section) or {}) | set(b.get(section) or {})):
            va, vb = (a.get(section) or {}).get(key), (b.get(section) or {}).get(key)
            if va != vb:
                lines.append(f"{section}.{key}: {va} vs {vb}")
    return lines


@attrs.frozen(kw_only=True)
class TranslateOptions:
    source: Path = option(help="the source run folder or diffusers model folder (encodes)", validator=existing_dir)
    target: Path = option(help="the target run folder or diffusers model folder (decodes)", validator=existing_dir)
    input: Path | None = option(None, help="an array file or a folder of images to translate",
                                validator=existing_path)
    key: str | None = option(None, help="the array of the input file")
    n: int | None = option(None, help="translate N samples of the source run's data (default 1000)",
                           validator=positive)
    steps: int | None = option(None, help="sampler steps (default: the source run's)", validator=positive)
    sampler: str | None = option(None, help="sampler kind, e.g. ddim or ddim_heun (default: the source run's)")
    cycle: bool = option(True, help="also translate back and report the cycle error")
    seed: int = option(0, help="seed of the drawn inputs and the noise")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N")
    out: Path = option(Path("translation"), help="the output folder")
    source_label: int | None = option(None, help="encode (and draw) the source images of this class")
    target_label: int | Literal["random"] | None = option(
        None, help="decode towards this class, or random: each input towards its own class drawn uniformly")
    guidance: dict[str, Any] = option(factory=dict, help="guidance.scale=S and guidance.classifier=FILE.safetensors")

    def __attrs_post_init__(self) -> None:
        if self.input is not None and self.n is not None:
            raise ValueError("give input=FILE_OR_FOLDER or n=N, not both")


def _sampler(trainer: Any, opts: TranslateOptions) -> Any:
    spec = trainer.run.config.sampler
    params = dict(spec.params)
    if opts.steps is not None:
        params["steps"] = opts.steps
    kind = opts.sampler or spec.kind
    if kind not in trainer.run.registry.names("sampler"):
        raise UserError(f"sampler={kind}: not a sampler; available: {', '.join(trainer.run.registry.names('sampler'))}")
    return SamplerSpec(kind, params).build(trainer.run.registry)


def load_domain(folder: Path, device: str) -> Any:
    """A run folder's trainer with its EMA weights, or the ddib trainer of a diffusers model folder."""
    from sb_ddib.pretrained import is_diffusers_folder, load_diffusers_domain  # imports the method, which imports us

    if is_diffusers_folder(folder):
        return load_diffusers_domain(folder, device)
    return load_trainer(folder, device)[0]


def translate_runs(opts: TranslateOptions) -> dict[str, Any]:
    """Encode with the source run, decode with the target run (and back for the cycle); write the outputs."""
    source = load_domain(opts.source, opts.device)
    target = load_domain(opts.target, opts.device)
    differences = check_latent_convention(source, target)
    sampler = _sampler(source, opts)
    source.sampler = target.sampler = sampler
    torch_seed, data_seed, fresh_seed = derive_seeds(opts.seed, count=3)
    names, split = None, None
    # class labels and guidance (sb_ddib.guided)
    encode, _ = guided.guidance_options(opts.source_label, None, {}, target.device)
    n = opts.n or 1000
    if opts.input is not None:
        x, names = read_inputs(opts.input, tuple(source.shape), opts.key)
    elif encode:
        x = guided.draw_class(source, n, encode["guidance"].label, torch.Generator().manual_seed(data_seed))
    else:
        with evaluation_data(source, "test") as used:  # held-out digits: the source run's test split
            x = source.draw("x0", n, torch.Generator().manual_seed(data_seed))
        split = used.split
    label = opts.target_label
    if label == "random":
        label = guided.random_labels(target, len(x), torch.Generator().manual_seed(fresh_seed))
    _, decode = guided.guidance_options(opts.source_label, label, opts.guidance, target.device)
    torch.manual_seed(torch_seed)
    latent = sample_in_chunks(source, "forward", x, **encode)
    y = sample_in_chunks(target, "backward", latent.x, **decode)
    arrays = {"source": x, "latent": latent.x, "target": y.x}
    record: dict[str, Any] = {"source_run": str(opts.source), "target_run": str(opts.target), "n": len(x),
                              "split": split, "sampler": repr(sampler), "nfe_per_solve": latent.nfe,
                              "differences": differences, "latent_mean": float(latent.x.mean()),
                              "latent_std": float(latent.x.std())}
    if decode:
        record["target_label"] = opts.target_label
        record["guidance_scale"] = decode["guidance"].scale
        record["guidance_classifier"] = opts.guidance.get("classifier")
        record["target_class_accuracy"] = guided.class_accuracy(target, y.x, decode["guidance"].label)
    if opts.cycle:  # back along the same labels, unguided
        back = {"guidance": guided.Guidance(decode["guidance"].label)} if decode else {}
        arrays["latent_2"] = sample_in_chunks(target, "forward", y.x, **back).x
        arrays["cycle"] = sample_in_chunks(source, "backward", arrays["latent_2"], **encode).x
        record["cycle_l2"] = cycle_stats(x, arrays["cycle"])
    if x.ndim == 2:  # distribution distances against fresh samples of each run's own domain
        fresh = torch.Generator().manual_seed(fresh_seed)
        tgt, src = target.draw("x0", len(x), fresh), source.draw("x0", len(x), fresh)
        record["sliced_w2"] = {"translated_vs_target": sliced_wasserstein2(y.x, tgt),
                               "source_vs_target": sliced_wasserstein2(x, tgt),
                               "source_vs_source": sliced_wasserstein2(x, src)}
    elif x.ndim == 4 and x.shape[1] == 1:  # digits-CNN metrics (sbcore.metrics.digits) for 1-channel images
        with evaluation_data(target, "test"):  # the target domain's held-out images
            tgt = target.draw("x0", max(len(x), 2), torch.Generator().manual_seed(fresh_seed))
        record["image_metrics"] = {"feature_distance_translated": feature_distance(y.x, tgt),
                                   "feature_distance_source": feature_distance(x, tgt),
                                   "domain_accuracy_translated": domain_accuracy(y.x, tgt),
                                   "domain_accuracy_source": domain_accuracy(x, tgt)}
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    saved = {k: v.numpy() for k, v in arrays.items()}
    if names is not None:
        saved["names"] = np.array(names)
    atomic_write(out / "translation.npz", lambda tmp: np.savez(tmp, **saved))
    _pictures(out, arrays)
    atomic_write(out / "translation.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
    return record


def _pictures(out: Path, arrays: dict[str, Tensor]) -> None:
    if arrays["source"].ndim == 2:
        translation_figure(out / "translation.png", arrays["source"], arrays["latent"], arrays["target"],
                           arrays.get("cycle"))
    elif arrays["source"].ndim == 4:
        for key in ("source", "target", "cycle"):
            if key in arrays:
                plots.image_grid(out / f"{key}.png", arrays[key][:64])


def command(args: argparse.Namespace) -> int:
    opts = parse_options("sbcore translate", TranslateOptions, args.items)
    record = translate_runs(opts)
    out = opts.out
    print(f"translated {record['n']} samples {record['source_run']} -> {record['target_run']}, "
          f"{record['sampler']}, NFE {record['nfe_per_solve']} per solve; latent mean {record['latent_mean']:.3f} "
          f"std {record['latent_std']:.3f}")
    for line in record["differences"]:
        print(f"  differs: {line}")
    if "cycle_l2" in record:
        c = record["cycle_l2"]
        print(f"cycle L2 (source -> target -> source): mean {c['mean']:.4g} median {c['median']:.4g} "
              f"p99 {c['p99']:.4g} max {c['max']:.4g}")
    if "sliced_w2" in record:
        s = record["sliced_w2"]
        print(f"sliced W2 to fresh target samples: translated {s['translated_vs_target']:.4f}, untranslated source "
              f"{s['source_vs_target']:.4f} (source vs fresh source {s['source_vs_source']:.4f})")
    for key, value in record.get("image_metrics", {}).items():
        print(f"  {key:32s} {value:.4f}")
    if record.get("target_class_accuracy") is not None:
        print(f"  {'target_class_accuracy':32s} {record['target_class_accuracy']:.4f} (class {record['target_label']}, "
              f"guidance scale {record['guidance_scale']:g})")
    print(f"wrote {out}/translation.npz, translation.json and pictures")
    return 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    text = "translate between two independently trained runs through their shared latent (DDIB)"
    parser = subparsers.add_parser("translate", help=f"{text}: {USAGE}", description=f"{text}. {USAGE}")
    parser.add_argument("items", nargs="*", help="key=value items")
    parser.set_defaults(handler=command)
