"""Apply named metrics to a run's samples: during training (the `sbcore_evaluate` hook) and after it
(`sbcore eval run=DIR`, which writes ``eval.json`` with everything needed to reproduce the numbers).

Samples follow the `sbcore_evaluate` convention: ``samples[direction]`` is a Trajectory (or a tensor)
of generated outputs, ``samples[start]`` its inputs, ``samples[f"{end}_data"]`` real data of the side
it ends on and, for paired data, ``samples[f"{end}_paired"]`` the true partner of each input.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from sbcore import __version__
from sbcore.config import ConfigError, error_lines, load_yaml, make_converter, schema_for
from sbcore.io.plots import atomic_write
from sbcore.metrics.base import Metric
from sbcore.registry import Registry
from sbcore.seeding import derive_seeds

#: direction -> (the side it starts from, the side it ends on).
ENDS = {"forward": ("x0", "x1"), "backward": ("x1", "x0")}
VECTOR_DEFAULTS = ("w2", "sliced_w2", "mmd", "energy", "gaussian_w2")
IMAGE_DEFAULTS = ("msd", "sliced_w2", "mmd")
DIGIT_DEFAULTS = ("feature_distance", "domain_accuracy")
PAIRED_DEFAULTS = ("psnr", "ssim")


def parse_metric_list(text: str) -> list[Any]:
    """``"w2,mmd"`` or a YAML list such as ``"[w2, {kind: mmd, scales: [1.0]}]"`` -> specs."""
    value = load_yaml(text) if text.strip().startswith("[") else [s.strip() for s in text.split(",") if s.strip()]
    if not isinstance(value, list) or not value:
        raise ConfigError([f"metrics: expected names separated by commas or a YAML list, got {text!r}"])
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
    """What `sbcore eval` computes when neither the command nor the config names metrics."""
    if len(shape) != 3:
        return list(VECTOR_DEFAULTS)
    names = list(IMAGE_DEFAULTS)
    if shape[0] in (1, 3) and shape[1:] in ((28, 28), (32, 32)):
        names += DIGIT_DEFAULTS
    return names + list(PAIRED_DEFAULTS if paired else ())


def evaluate_samples(
    samples: Mapping[str, Any], metrics: Mapping[str, Metric], generator: torch.Generator
) -> tuple[dict[str, float], dict[str, str]]:
    """({"direction/name": value}, {"direction/name": why it was skipped})."""
    values: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for direction, (start, end) in ENDS.items():
        if direction not in samples:
            continue
        out = samples[direction]
        generated: Tensor = (out.x if hasattr(out, "x") else out).detach().float().cpu()
        references = {"source": samples.get(start), "target": samples.get(f"{end}_data"),
                      "paired": samples.get(f"{end}_paired")}
        for name, metric in metrics.items():
            key = f"{direction}/{name}"
            reference = references[metric.reference]
            if metric.images_only and generated.ndim != 4:
                skipped[key] = "needs images (B, C, H, W)"
            elif reference is None:
                skipped[key] = {"paired": "needs paired data", "source": "no inputs given",
                                "target": f"no {end} data given"}[metric.reference]
            else:
                result = metric(generated, reference.detach().float().cpu(), generator)
                if isinstance(result, Mapping):
                    values.update({f"{key}_{k}" if k else key: float(v) for k, v in result.items()})
                else:
                    values[key] = float(result)
    return values, skipped


def _sample_in_chunks(
    trainer: Any, direction: str, x_start: Tensor, steps: int | None, chunk: int
) -> tuple[Tensor, int]:
    outs, nfe = [], 0
    parts = x_start.split(chunk)
    with torch.no_grad():
        for part in tqdm(parts, desc=f"sampling {direction}", unit="batch", leave=False, disable=len(parts) < 2):
            traj = trainer.sample(direction, part, steps=steps)
            outs.append(traj.x.float().cpu())
            nfe = traj.nfe
    return torch.cat(outs), nfe


def _json_safe(values: dict[str, float]) -> dict[str, float | str]:
    """Strict JSON has no inf/nan (PSNR of identical images is inf): write those as strings."""
    return {k: v if math.isfinite(v) else str(v) for k, v in values.items()}


def evaluate_run(
    run_dir: Path, n: int = 2000, metrics: list[Any] | None = None, seed: int = 0, steps: int | None = None,
    chunk: int = 1000, device: str = "auto",
) -> dict[str, Any]:
    """Sample every direction of a run with its EMA weights, compute metrics, write ``eval.json``."""
    from sbcore.sample import load_trainer

    started = time.perf_counter()
    trainer, meta = load_trainer(run_dir, device)
    config = trainer.run.config
    paired = config.data.pairs is not None
    torch_seed, start_seed, data_seed, metric_seed = derive_seeds(seed, count=4)
    shape = tuple(trainer.draw("x0", 1, torch.Generator().manual_seed(start_seed)).shape[1:])
    specs = metrics or configured_metrics(config) or default_metrics(shape, paired)
    built = build_metrics(specs, trainer.run.registry)
    samples: dict[str, Any] = {}
    nfe: dict[str, int] = {}
    for direction in trainer.directions:
        start, end = ENDS[direction]
        x_start = trainer.draw(start, n, torch.Generator().manual_seed(start_seed))
        if paired:  # the same draw on the other side gives each input's true partner
            samples[f"{end}_paired"] = trainer.draw(end, n, torch.Generator().manual_seed(start_seed))
        samples[f"{end}_data"] = trainer.draw(end, n, torch.Generator().manual_seed(data_seed))
        torch.manual_seed(torch_seed)
        samples[direction], nfe[direction] = _sample_in_chunks(trainer, direction, x_start, steps, chunk)
        samples[start] = x_start
    values, skipped = evaluate_samples(samples, built, torch.Generator().manual_seed(metric_seed))
    plan_file = run_dir / "distributed.json"  # the launcher's record of world size and global batch
    plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    sampler = {"kind": config.sampler.kind, **config.sampler.params}
    if steps is not None:
        sampler["steps"] = steps
    record = {
        "run": str(run_dir), "checkpoint": f"step {meta.get('step')}", "step": meta.get("step"), "weights": "ema",
        "n": n, "seed": seed, "sampler": sampler, "nfe": nfe, "world_size": plan.get("world_size", 1),
        "global_batch": plan.get("global_batch", config.train.batch_size),
        "metrics": _json_safe(values), "skipped": skipped,
        "metric_specs": [s if isinstance(s, (str, dict)) else {"kind": s.kind, **s.params} for s in specs],
        "sbcore_version": __version__, "seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write(run_dir / "eval.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return record
