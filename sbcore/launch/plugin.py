"""Built-in plugin with the operations command ``sbcore status run=DIR`` (``sbcore export`` is `sbcore.export`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import attrs

from sbcore.hookspecs import hookimpl
from sbcore.options import existing_dir, option, parse_options


def status_lines(run_dir: Path) -> list[str]:
    """Job state, starts/preemptions, the last metrics and the newest checkpoint of a run."""
    from sbcore.io import checkpoint as ckpt
    from sbcore.launch.events import read_events
    from sbcore.launch.submit import LAUNCH_FILE, local_job_state, slurm_job_state
    from sbcore.log.plugin import read_metrics

    lines = [f"run: {run_dir}"]
    launch = run_dir / LAUNCH_FILE
    if launch.is_file():
        try:
            info = json.loads(launch.read_text(errors="replace"))
            fields = [str(info[k]) for k in ("cluster", "job_id", "kind", "stdout")]
        except (ValueError, KeyError, TypeError):  # torn by a killed submission, or edited
            lines.append(f"job: {launch} is unreadable (torn or edited); its job state is unknown")
        else:
            cluster, job_id, kind, stdout = fields
            query = slurm_job_state if cluster == "slurm" else local_job_state
            state = query(job_id) or "unknown (the scheduler no longer lists it)"
            lines += [f"job {job_id} ({kind}): {state}", f"  logs: {stdout}"]
    for event in read_events(run_dir):
        keys = ("signal", "requeued", "world_size", "job", "restart")
        extra = "".join(f" {k}={event[k]}" for k in keys if event.get(k))
        lines.append(f"  {event['event']} at step {event.get('step')}{extra}")
    metrics = run_dir / "metrics.jsonl"
    records = read_metrics(metrics) if metrics.is_file() else []
    groups = (("training", lambda k: not k.startswith("eval/")), ("evaluation", lambda k: k.startswith("eval/")))
    for label, keep in groups:
        last = next((r for r in reversed(records) if any(keep(k) for k in r if k != "step")), None)
        if last is not None:
            shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in last.items() if k != "step" and keep(k))
            lines.append(f"last {label} metrics (step {last['step']}): {shown}")
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    lines.append(f"latest checkpoint: {found[-1] if found else 'none'}")
    return lines


@attrs.frozen(kw_only=True)
class StatusOptions:
    run: Path = option(help="the run folder", validator=existing_dir)


def cmd_status(args: argparse.Namespace) -> int:
    opts = parse_options("sbcore status", StatusOptions, args.items)
    print("\n".join(status_lines(opts.run)))
    return 0


@hookimpl
def sbcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    for name, fn, text in [
        ("status", cmd_status, "job state, restarts and last metrics of a run: sbcore status run=DIR"),
    ]:
        parser = subparsers.add_parser(name, help=text, description=text)
        parser.add_argument("items", nargs="*", help="key=value items")
        parser.set_defaults(handler=fn)
