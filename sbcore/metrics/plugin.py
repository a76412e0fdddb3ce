"""Evaluation as a built-in plugin: the named metrics, metrics chosen in config during training
(`sbcore_evaluate`), and the ``sbcore eval`` and ``sbcore report`` commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sbcore.errors import RunFolderError, UserError
from sbcore.hookspecs import hookimpl
from sbcore.metrics import digits, image, inception, vector
from sbcore.metrics.gaussian_plan import PLAN_METRICS, format_plan_metrics, gaussian_defaults
from sbcore.metrics.evaluate import (
    build_metrics,
    configured_metrics,
    evaluate_run,
    evaluate_samples,
    paired_defaults,
    parse_metric_list,
)
from sbcore.metrics.translation import Evaluation, metric_generator
from sbcore.registry import Registry

METRICS = {
    "w2": vector.W2,
    "sliced_w2": vector.SlicedW2,
    "mmd": vector.MMD,
    "energy": vector.Energy,
    "gaussian_w2": vector.GaussianW2,
    "msd": image.MSD,
    "psnr": image.PSNR,
    "ssim": image.SSIM,
    "feature_distance": digits.FeatureDistance,
    "domain_accuracy": digits.DomainAccuracy,
    "fid": inception.FID,
    "kid": inception.KID,
    **PLAN_METRICS,
}
EVAL_USAGE = "sbcore eval run=DIR [n=2000] [metrics=w2,mmd] [seed=0] [steps=K] [device=auto]"
REPORT_USAGE = "sbcore report run=DIR [out=DIR/report]"


@hookimpl
def sbcore_register(registry: Registry) -> None:
    for name, cls in METRICS.items():
        registry.add("metric", name, cls)


@hookimpl
def sbcore_run_start(run: Any) -> None:
    """Build the configured metrics once at the start, so a bad name or a missing optional
    dependency (Inception weights) stops the run before training rather than at its first evaluation."""
    build_metrics(configured_metrics(run.config), run.registry)


@hookimpl
def sbcore_evaluate(run: Any, evaluation: Evaluation) -> dict[str, float] | None:
    """The metrics named in the run's ``eval.metrics`` on the training evaluation's translations, plus
    PSNR/SSIM against the true partners when the data is paired images and the closed-form plan scores
    when it is a Gaussian problem (printed as the evaluation's headline)."""
    specs = configured_metrics(run.config)
    listed = {s if isinstance(s, str) else s["kind"] if isinstance(s, dict) else s.kind for s in specs}
    defaults = paired_defaults(evaluation.translations) + gaussian_defaults(run)
    specs += [name for name in defaults if name not in listed]
    if not specs:
        return None
    values, skipped = evaluate_samples(run, evaluation.translations, build_metrics(specs, run.registry),
                                       metric_generator(run.config.seed))
    for key, why in skipped.items():
        run.echo(f"metric {key} skipped: {why}")
    headline = format_plan_metrics(values, evaluation.step)
    if headline:
        run.echo(headline)
    return values


def _options(args: argparse.Namespace, allowed: set[str], usage: str) -> dict[str, str]:
    opts = dict(item.split("=", 1) for item in args.items if "=" in item)
    unknown = sorted(set(opts) - allowed) + [item for item in args.items if "=" not in item]
    if unknown or "run" not in opts:
        raise UserError(f"usage: {usage}" + (f"; unknown: {unknown}" if unknown else ""))
    if not Path(opts["run"]).is_dir():
        raise RunFolderError(f"run={opts['run']}: run folder not found")
    return opts


def cmd_eval(args: argparse.Namespace) -> int:
    opts = _options(args, {"run", "n", "metrics", "seed", "steps", "device"}, EVAL_USAGE)
    record = evaluate_run(
        Path(opts["run"]), n=int(opts.get("n", 2000)),
        metrics=parse_metric_list(opts["metrics"]) if "metrics" in opts else None,
        seed=int(opts.get("seed", 0)), steps=int(opts["steps"]) if "steps" in opts else None,
        device=opts.get("device", "auto"),
    )
    print(f"{record['run']} at step {record['step']} (EMA weights), n={record['n']}, seed={record['seed']}, "
          f"sampler {record['sampler']}, NFE {record['nfe']}")
    for key, value in record["metrics"].items():
        print(f"  {key:32s} {value:.6g}" if isinstance(value, float) else f"  {key:32s} {value}")
    for key, why in record["skipped"].items():
        print(f"  {key:32s} skipped: {why}")
    print(f"wrote {Path(record['run']) / 'eval.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sbcore.report import write_report

    opts = _options(args, {"run", "out"}, REPORT_USAGE)
    page = write_report(Path(opts["run"]), Path(opts["out"]) if "out" in opts else None)
    print(f"wrote {page}")
    return 0


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    for name, handler, usage, text in [
        ("eval", cmd_eval, EVAL_USAGE, "compute metrics on a run's EMA samples and write eval.json"),
        ("report", cmd_report, REPORT_USAGE, "write an HTML page (images embedded) and PNGs of a run"),
    ]:
        parser = subparsers.add_parser(name, help=f"{text}: {usage}", description=f"{text}. {usage}")
        parser.add_argument("items", nargs="*", help="key=value items")
        parser.set_defaults(handler=handler)
