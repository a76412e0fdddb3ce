"""``sbcore export run=DIR [format=csv|diffusers] [out=...]``: a run's metrics or its weights, for other tools.

``format=csv`` (the default): the metrics of ``metrics.jsonl`` as one table, one row per logged step
(training and evaluation records of a step merged), a ``step`` column first and then every metric in order
of first appearance; a metric missing at a step is an empty cell.

``format=diffusers``: a folder diffusers loads with ``DDPMPipeline.from_pretrained`` (and sbcore translate
with ``source=``/``target=``): ``unet/`` (the EMA weights of the latest checkpoint, safetensors),
``scheduler/`` (a ``DDPMScheduler`` of the run's process, `sbcore.process.diffusers_schedule`),
``model_index.json`` and a model card ``README.md`` with the run's config, data and measured metrics.
Supported: a run whose process is ``vp`` with ``steps: N``, whose only network is ``diffusers_unet``
(called at timestep t (N - 1), the timestep diffusers passes) and whose method says what it predicts
(``method.predict`` eps, x0 or v, without ``eps_skip``; the ``ddib`` method). Anything else is refused
with what is missing. The folder is written beside ``out`` and renamed into place: a refused or failed
export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import csv
import json
import secrets
import shutil
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from sbcore.errors import UserError, require
from sbcore.hookspecs import hookimpl
from sbcore.io.files import atomic_write
from sbcore.options import existing_dir, help_text, option, parse_options

COMMAND = "sbcore export"


@attrs.frozen(kw_only=True)
class ExportOptions:
    run: Path = option(help="the run folder", validator=existing_dir)
    format: Literal["csv", "diffusers"] = option("csv", help="csv: the metrics table; diffusers: a DDPM pipeline "
                                                             "folder of the run's network and process")
    out: Path | None = option(None, help="csv: the file (default RUN/metrics.csv); diffusers: the folder to "
                                         "create (required, must not exist)")

    def __attrs_post_init__(self) -> None:
        if self.format == "csv" and self.out is not None and self.out.suffix.lower() != ".csv":
            raise ValueError(f"format=csv writes a .csv file, got out={self.out}")
        if self.format == "diffusers":
            if self.out is None:
                raise ValueError("format=diffusers needs out=DIR, the folder to create")
            if self.out.exists():
                raise ValueError(f"out={self.out} exists; export writes a new folder")


# ---- csv -------------------------------------------------------------------------------------------


def metrics_to_csv(run_dir: Path, out: Path | None = None) -> Path:
    """The run's ``metrics.jsonl`` as a CSV table (see the module docstring); written atomically."""
    from sbcore.log.plugin import read_metrics

    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    rows: dict[int, dict[str, object]] = {}
    columns: dict[str, None] = {"step": None}
    for record in records:
        rows.setdefault(record["step"], {"step": record["step"]}).update(record)
        columns.update(dict.fromkeys(record))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
            writer.writeheader()
            for step in sorted(rows):
                writer.writerow(rows[step])

    return atomic_write(Path(out) if out else Path(run_dir) / "metrics.csv", write)


# ---- diffusers -------------------------------------------------------------------------------------


def diffusers_parts(trainer: Any) -> tuple[Any, dict[str, Any]]:
    """(the UNet2DModel, DDPMScheduler arguments) of a run, or a UserError naming what is not supported."""
    from sbcore.network.diffusers_unet import DiffusersUNet
    from sbcore.process.diffusers_schedule import scheduler_from_process
    from sbcore.process.vp import VPDiffusion

    config = trainer.run.config
    supported = ("format=diffusers exports runs on process: vp with steps: N whose one network is diffusers_unet "
                 "and whose method.predict is eps, x0 or v (the ddib method)")
    if config.data.latent is not None:
        raise UserError(f"{supported}; this run is a latent bridge (data.latent), whose decoder a DDPM pipeline "
                        "does not hold")
    process = trainer.process
    if not isinstance(process, VPDiffusion) or process.steps is None:
        raise UserError(f"{supported}; this run's process is {process!r}")
    networks = dict(trainer.networks.items())
    if len(networks) != 1 or not isinstance(next(iter(networks.values())), DiffusersUNet):
        kinds = {name: type(net).__name__ for name, net in networks.items()}
        raise UserError(f"{supported}; this run's networks are {kinds} (network.kind: {config.network.kind})")
    predict = getattr(config.method, "predict", None)
    if predict not in ("eps", "x0", "v") or getattr(config.method, "eps_skip", False):
        raise UserError(f"{supported}; this run (plugin {config.plugin}) has method.predict={predict!r}"
                        + (" and eps_skip: true (an output diffusers cannot add)" if getattr(
                            config.method, "eps_skip", False) else ""))
    net = next(iter(networks.values()))
    if net.timesteps != process.steps:
        raise UserError(f"network.timesteps ({net.timesteps}) differs from process.steps ({process.steps}): the "
                        "UNet would not be called at the scheduler's timesteps")
    return net.unet, scheduler_from_process(process, predict)


def model_card(trainer: Any, run_dir: Path, step: int) -> str:
    """README.md: diffusers' model card front matter, the run's config, its data and the measured metrics."""
    from sbcore.log.plugin import read_metrics

    config = trainer.run.config_dict()
    records = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    last_eval = next((r for r in reversed(records) if any(k.startswith("eval/") for k in r)), None)
    last_train = next((r for r in reversed(records) if "loss" in r), None)
    lines = ["---", "library_name: diffusers", "tags: [sbcore, ddpm, unconditional-image-generation]", "---", "",
             f"# {config.get('name') or run_dir.name}", "",
             f"Exported by `sbcore export format=diffusers` from the run `{run_dir}` (plugin `{config['plugin']}`), "
             f"EMA weights of the checkpoint at step {step}.", "",
             "```python", "from diffusers import DDPMPipeline", "pipeline = DDPMPipeline.from_pretrained(\"PATH\")",
             "images = pipeline(batch_size=4).images", "```", "",
             "The UNet takes DDPM timesteps 0..N-1 (sbcore's t in [0, 1] is timestep t (N - 1)); the scheduler "
             "never clips x0 (sbcore's samplers do not).", "",
             "## Data", "", f"Per-sample shape {list(trainer.shape)}, values as the run saw them.", "",
             "```yaml", yaml.safe_dump({"data": config["data"]}, sort_keys=False).rstrip(), "```", "",
             "## Measured metrics", ""]
    if last_eval is None and last_train is None:
        lines.append("The run logged no metrics.")
    for title, record in (("training", last_train), ("evaluation", last_eval)):
        if record is None:
            continue
        lines += [f"Last {title} record (step {record['step']}):", "", "| metric | value |", "| --- | --- |"]
        keep = (lambda k: k.startswith("eval/")) if title == "evaluation" else (lambda k: not k.startswith("eval/"))
        lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in record.items() if k != "step" and keep(k)]
        lines.append("")
    lines += ["## Run config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def export_diffusers(run_dir: Path, out: Path) -> Path:
    """Write the DDPM pipeline folder of a run at `out` (see the module docstring)."""
    from sbcore.sample import load_trainer

    diffusers = require("diffusers", "diffusers", "sbcore export format=diffusers")
    trainer, meta = load_trainer(run_dir, "cpu")
    unet, scheduler = diffusers_parts(trainer)
    pipeline = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(**scheduler))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.mkdir()
        pipeline.save_pretrained(tmp, safe_serialization=True)
        (tmp / "README.md").write_text(model_card(trainer, run_dir, int(meta.get("step", 0))))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---- the command -----------------------------------------------------------------------------------


def command(args: argparse.Namespace) -> int:
    opts = parse_options(COMMAND, ExportOptions, args.items)
    if opts.format == "csv":
        print(f"wrote {metrics_to_csv(opts.run, opts.out)}")
        return 0
    out = export_diffusers(opts.run, opts.out)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {', '.join(files)}")
    print(f"load it with diffusers.DDPMPipeline.from_pretrained({json.dumps(str(out))}) "
          f"or sbcore translate source={out} ...")
    return 0


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    text = ("export a run: its metrics as CSV (format=csv) or its network and process as a diffusers pipeline "
            "folder (format=diffusers out=DIR)")
    parser = subparsers.add_parser("export", help=text, description=text, epilog=help_text(ExportOptions),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="key=value items")
    parser.set_defaults(handler=command)
