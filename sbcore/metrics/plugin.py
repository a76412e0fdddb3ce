"""Evaluation as a built-in plugin: the named metrics, metrics chosen in config during training
(`sbcore_evaluate`), and the ``sbcore eval`` and ``sbcore report`` commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

import attrs

from sbcore.hookspecs import hookimpl
from sbcore.metrics import classifier, digits, image, inception, vector
from sbcore.metrics.eval_data import Split
from sbcore.metrics.evaluate import (
    build_metrics,
    configured_metrics,
    evaluate_run,
    evaluate_samples,
    paired_defaults,
    parse_metric_list,
    summary_table,
)
from sbcore.metrics.gaussian_plan import PLAN_METRICS, format_plan_metrics, gaussian_defaults
from sbcore.metrics.translation import Evaluation, metric_generator
from sbcore.options import existing_dir, help_text, option, parse_options, positive, suffix, usage
from sbcore.registry import Registry
from sbcore.sample import check_eval_overrides

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
    "classifier_accuracy": classifier.ClassifierAccuracy,
    **PLAN_METRICS,
}


@attrs.frozen(kw_only=True)
class EvalOptions:
    """``sbcore eval``'s options."""

    run: Path = option(help="the run folder", validator=existing_dir)
    n: int | Literal["all"] = option(2000, help="inputs per direction, or all items of the split",
                                     validator=positive)
    split: Split = option("test", help="evaluate on the held-out (test) or the training items")
    metrics: str | None = option(None, help="names separated by commas, or a YAML list (default: the run's "
                                            "eval.metrics, else by data shape)")
    seed: int = option(0, help="seed of the inputs drawn, the sampler's noise and the metrics' subsets")
    steps: int | None = option(None, help="sampler steps (the run's by default)", validator=positive)
    device: str = option("auto", help="auto, cpu or cuda[:K]")
    sampler: dict[str, Any] = option(factory=dict, help="sampler.kind=NAME and sampler.PARAM=VALUE overrides")
    eval: dict[str, Any] = option(factory=dict, help="eval.data.SIDE.KEY=VALUE and eval.output=final|predicted_end")

    def __attrs_post_init__(self) -> None:
        check_eval_overrides(self.eval, ("data", "output"))
        if self.metrics is not None:
            parse_metric_list(self.metrics)


@attrs.frozen(kw_only=True)
class ReportOptions:
    """``sbcore report``'s options."""

    run: Path = option(help="the run folder", validator=existing_dir)
    out: Path | None = option(None, help="the folder to write (default RUN/report)")


@attrs.frozen(kw_only=True)
class StatsOptions:
    """``sbcore stats``'s options (the first item without ``=`` is the source)."""

    source: str = option(help="a dataset name (as `sbcore plugins` lists them), an image folder or an array file")
    out: Path = option(help="the statistics file to write", validator=suffix(".npz"))
    extractor: str | None = option(None, help="digits, inception or flatten (default: digits for 28/32 px "
                                              "images, inception for other images, flatten for vectors)")
    split: Split = option("test", help="the split of a named dataset (a folder or file is its own split)")
    n: int | Literal["all"] = option("all", help="every item, or N drawn with seed", validator=positive)
    seed: int = option(0, help="seed of the N items drawn")
    weights: str | None = option(None, help="the Inception weights file")
    batch_size: int = option(500, help="images per feature batch", validator=positive)
    data: dict[str, Any] = option(factory=dict, help="data.KEY=VALUE parameters of the source (size, classes ...)")


EVAL_USAGE = usage("sbcore eval", EvalOptions)
REPORT_USAGE = usage("sbcore report", ReportOptions)


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


def cmd_eval(args: argparse.Namespace) -> int:
    opts = parse_options("sbcore eval", EvalOptions, args.items)
    record = evaluate_run(
        opts.run, n=opts.n, metrics=parse_metric_list(opts.metrics) if opts.metrics else None, seed=opts.seed,
        steps=opts.steps, device=opts.device, split=opts.split, sampler=opts.sampler, eval_section=opts.eval)
    print("\n".join(summary_table(record)))
    print(f"wrote {opts.run / 'eval.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sbcore.report import write_report

    opts = parse_options("sbcore report", ReportOptions, args.items)
    page = write_report(opts.run, opts.out)
    print(f"wrote {page}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from sbcore.metrics.stats import write_stats

    items = [f"source={i}" if "=" not in i and n == 0 else i for n, i in enumerate(args.items)]
    opts = parse_options("sbcore stats", StatsOptions, items)
    stats = write_stats(opts)
    print(f"wrote {opts.out}: {stats.source}, n {stats.n}, extractor {stats.extractor}, "
          f"{len(stats.mean)} features")
    return 0


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    for name, handler, schema, text in [
        ("eval", cmd_eval, EvalOptions, "compute metrics on a run's EMA samples and write eval.json"),
        ("report", cmd_report, ReportOptions, "write an HTML page (images embedded) and PNGs of a run"),
        ("stats", cmd_stats, StatsOptions, "feature mean and covariance of a whole split, the reference of FID"),
    ]:
        command = usage(f"sbcore {name}", schema)
        parser = subparsers.add_parser(name, help=f"{text}: {command}", description=f"{text}. {command}",
                                       epilog=help_text(schema), formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("items", nargs="*", help="key=value items")
        parser.set_defaults(handler=handler)
