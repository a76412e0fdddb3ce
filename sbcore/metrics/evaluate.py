"""Apply named metrics to a run's translations (`sbcore.metrics.translation.Translation`): during
training (the `sbcore_evaluate` hook) and after it (`sbcore eval run=DIR`, which writes ``eval.json``
with everything needed to reproduce the numbers). Both sample through `translate`, so `sbcore eval`
with the run's seed and ``n = train.eval_samples`` gives the values of the run's final evaluation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from sbcore import __version__
from sbcore.config import error_lines, make_converter, schema_for
from sbcore.config_text import ConfigError, load_yaml
from sbcore.io.plots import atomic_write
from sbcore.launch.distributed import read_plan
from sbcore.metrics.base import Metric, MetricUnavailable
from sbcore.metrics.eval_data import Split
from sbcore.metrics.gaussian_plan import gaussian_defaults
from sbcore.metrics.translation import CHUNK, Translation, metric_generator, translate
from sbcore.registry import Registry

VECTOR_DEFAULTS = ("w2", "sliced_w2", "mmd", "energy", "gaussian_w2")
IMAGE_DEFAULTS = ("msd", "sliced_w2", "mmd")
DIGIT_DEFAULTS = ("feature_distance", "domain_accuracy")
PAIRED_DEFAULTS = ("psnr", "ssim")


def parse_metric_list(text: str) -> list[Any]:
    """``"w2,mmd"`` or a YAML list such as ``"[w2, {kind: mmd, scales: [1.0]}]"`` -> specs."""
    value = load_yaml(text) if text.strip().startswith("[") else [s.strip() for s in text.split(",") if s.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, dict)) for v in value):
        raise ConfigError([f"metrics: expected names separated by commas or a YAML list of names and "
                           f"{{kind: NAME, ...}} mappings, got {text!r}"])
    return value


def build_metrics(specs: Iterable[Any], registry: Registry) -> dict[str, Metric]:
    """Instantiate metric specs: names, ``{kind: NAME, **params}`` dicts, or config components
    (objects with ``kind`` and ``params``); parameters are validated like any component's."""
    conv = make_converter(registry)
    built: dict[str, Metric] = {}
    errors: list[str] = []
    for spec in specs:
        if isinstance(spec, str):
            kind, params = spec, {}
        elif isinstance(spec, Mapping) and "kind" in spec:
            kind, params = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
        elif hasattr(spec, "kind") and hasattr(spec, "params"):
            kind, params = spec.kind, dict(spec.params)
        else:
            errors.append(f"metric spec {spec!r}: expected a name or {{kind: NAME, ...}}")
            continue
        if kind in built:
            errors.append(f"metric {kind!r} is listed twice; give each metric once")
            continue
        try:
            cls = registry.get("metric", kind)
        except KeyError as exc:
            errors.append(f"metric {kind!r}: {exc}")
            continue
        try:
            checked = conv.structure(params, schema_for(cls))
            built[kind] = cls(**{k: getattr(checked, k) for k in params})
        except Exception as exc:  # noqa: BLE001 - every bad spec is reported together
            errors += [f"metric {kind!r}: {line}" for line in error_lines(exc, "params")]
    if errors:
        raise ConfigError(errors)
    return built


def configured_metrics(config: Any) -> list[Any]:
    """The metric specs of a run's ``eval.metrics`` section (empty when the config has none)."""
    return list(getattr(getattr(config, "eval", None), "metrics", None) or [])


def default_metrics(shape: tuple[int, ...], paired: bool) -> list[str]:
    """What `sbcore eval` computes when neither the command nor the config names metrics (a Gaussian
    problem's plan scores come on top, `gaussian_defaults`)."""
    if len(shape) != 3:
        return list(VECTOR_DEFAULTS)
    names = list(IMAGE_DEFAULTS)
    if shape[0] in (1, 3) and shape[1:] in ((28, 28), (32, 32)):
        names += DIGIT_DEFAULTS
    return names + list(PAIRED_DEFAULTS if paired else ())


def paired_defaults(translations: Mapping[str, Translation]) -> list[str]:
    """PSNR/SSIM when some direction translated images that have a true partner (paired data)."""
    paired = any(tr.partner is not None and tr.inputs.ndim == 4 for tr in translations.values())
    return list(PAIRED_DEFAULTS) if paired else []


def evaluate_samples(
    run: Any, translations: Mapping[str, Translation], metrics: Mapping[str, Metric], generator: torch.Generator
) -> tuple[dict[str, float], dict[str, str]]:
    """({"direction/name": value}, {"direction/name": why it was skipped}); each metric is bound to `run`
    first (`Metric.bind`)."""
    values: dict[str, float] = {}
    skipped: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for name, metric in metrics.items():
        try:
            metric.bind(run)
        except MetricUnavailable as exc:
            unavailable[name] = str(exc)
    for direction, tr in translations.items():
        generated: Tensor = tr.outputs.x.detach().float().cpu()
        references = {"source": tr.inputs, "target": tr.data, "paired": tr.partner, "translation": tr}
        for name, metric in metrics.items():
            key = f"{direction}/{name}"
            reference = references[metric.reference]
            if name in unavailable:
                skipped[key] = unavailable[name]
            elif metric.images_only and generated.ndim != 4:
                skipped[key] = "needs images (B, C, H, W)"
            elif reference is None:
                skipped[key] = "needs paired data"
            elif metric.needs_labels and tr.labels is None:
                skipped[key] = "needs labelled data (the source has no labels)"
            else:
                if isinstance(reference, Tensor):
                    reference = reference.detach().float().cpu()
                result = metric(generated, reference, generator)
                if isinstance(result, Mapping):
                    values.update({f"{key}_{k}" if k else key: float(v) for k, v in result.items()})
                else:
                    values[key] = float(result)
    return values, skipped


def _json_safe(values: dict[str, float]) -> dict[str, float | str]:
    """Strict JSON has no inf/nan (PSNR of identical images is inf): write those as strings."""
    return {k: v if math.isfinite(v) else str(v) for k, v in values.items()}


def evaluate_run(
    run_dir: Path, n: int | Literal["all"] = 2000, metrics: list[Any] | None = None, seed: int = 0,
    steps: int | None = None, chunk: int = CHUNK, device: str = "auto", split: Split = "test",
    sampler: dict[str, Any] | None = None, eval_section: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sample every direction of a run with its EMA weights on its evaluation data of `split`, compute
    metrics, write ``eval.json``. `sampler` and `eval_section` override the run's sections
    (`sbcore.sample.run_config`)."""
    from sbcore.sample import chosen_sampler, load_trainer

    started = time.perf_counter()
    with chosen_sampler(sampler):
        trainer, meta = load_trainer(run_dir, device, sampler, eval_section)
        record = evaluate_trainer(trainer, meta, n, metrics, seed, steps, chunk, split)
    record["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write(run_dir / "eval.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return record


def evaluate_trainer(
    trainer: Any, meta: dict[str, Any], n: int | Literal["all"] = 2000, metrics: list[Any] | None = None,
    seed: int = 0, steps: int | None = None, chunk: int = CHUNK, split: Split = "test",
) -> dict[str, Any]:
    """`evaluate_run`'s record for a loaded trainer (`sbcore.sample.load_trainer`), without writing it:
    the metrics asked for (else the run's ``eval.metrics``, else defaults by data shape), plus PSNR/SSIM
    against the true partners when the data is paired images, as in-run evaluation adds them."""
    run_dir, config = trainer.run.dir, trainer.run.config
    drawn: dict[str, Any] = {}
    translations = translate(trainer, n, seed, steps=steps, chunk=chunk, split=split, output=config.eval.output,
                             drawn=drawn)
    shape = tuple(next(iter(translations.values())).inputs.shape[1:])
    paired = any(tr.partner is not None for tr in translations.values())
    specs = list(metrics or configured_metrics(config)
                 or default_metrics(shape, False) + gaussian_defaults(trainer.run))
    listed = {s if isinstance(s, str) else s["kind"] if isinstance(s, dict) else s.kind for s in specs}
    specs += [name for name in paired_defaults(translations) if name not in listed]
    values, skipped = evaluate_samples(trainer.run, translations, build_metrics(specs, trainer.run.registry),
                                       metric_generator(seed))
    nfe = {direction: tr.nfe for direction, tr in translations.items()}
    plan = read_plan(run_dir)  # the launcher's record of world size and global batch
    used_sampler = {"kind": config.sampler.kind, **config.sampler.params}
    if steps is not None:
        used_sampler["steps"] = steps
    return {
        "run": str(run_dir), "checkpoint": f"step {meta.get('step')}", "step": meta.get("step"), "weights": "ema",
        "split": drawn["split"], "n": {direction: len(tr.inputs) for direction, tr in translations.items()},
        "data": drawn["sources"], "seed": seed, "sampler": used_sampler, "output": config.eval.output,
        "nfe": nfe, "paired": paired, "world_size": plan.get("world_size", 1),
        "global_batch": plan.get("global_batch", config.train.batch_size),
        "metrics": _json_safe(values), "skipped": skipped,
        "metric_specs": [s if isinstance(s, (str, dict)) else {"kind": s.kind, **s.params} for s in specs],
        "sbcore_version": __version__,
    }


def _shown(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def summary_table(record: dict[str, Any]) -> list[str]:
    """`evaluate_run`'s record as a few lines: what was evaluated, then one row per metric and one
    column per direction (``direction/name`` keys; others, such as plan scores, in a column of their own)."""
    sampler = dict(record["sampler"])
    kind = sampler.pop("kind")
    lines = [f"{record['run']} at step {record['step']} (EMA weights), {record['split']} split, seed {record['seed']}",
             f"  n: {', '.join(f'{d} {k}' for d, k in record['n'].items())}; sampler {kind} "
             f"{' '.join(f'{k}={v}' for k, v in sampler.items())}; NFE "
             f"{', '.join(f'{d} {k}' for d, k in record['nfe'].items())}"
             + ("" if record.get("output", "final") == "final" else f"; output {record['output']}")]
    directions = list(record["n"])
    rows: dict[str, dict[str, Any]] = {}
    for key, value in record["metrics"].items():
        head, _, name = key.partition("/")
        column = head if head in directions and name else "-"
        rows.setdefault(name if column != "-" else key, {})[column] = value
    for key, why in record["skipped"].items():
        head, _, name = key.partition("/")
        rows.setdefault(name or key, {})[head if head in directions else "-"] = f"skipped: {why}"
    columns = directions + (["-"] if any("-" in r for r in rows.values()) else [])
    width = max([len(r) for r in rows] + [6])
    cells = {name: [_shown(r[c]) if c in r else "" for c in columns] for name, r in rows.items()}
    widths = [max([len(c if c != "-" else "")] + [len(v[i]) for v in cells.values() if not v[i].startswith("skipped")]
                  + [10]) for i, c in enumerate(columns)]
    lines.append("  " + "metric".ljust(width) + "  " + "  ".join(
        (c if c != "-" else "").rjust(w) for c, w in zip(columns, widths, strict=True)))
    for name, values in cells.items():
        given = {v for v in values if v}
        if len(given) == 1 and next(iter(given)).startswith("skipped"):  # the same reason in every column: once
            lines.append("  " + name.ljust(width) + "  " + next(iter(given)))
            continue
        lines.append("  " + name.ljust(width) + "  " + "  ".join(
            v.rjust(w) if not v.startswith("skipped") else v for v, w in zip(values, widths, strict=True)).rstrip())
    return lines
