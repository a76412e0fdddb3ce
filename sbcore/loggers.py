"""Built-in loggers, implemented as plugins on the run-lifecycle hooks.

``metrics.jsonl`` holds one JSON object per logged step (``{"step": N, ...metrics}``) and a final
``{"summary": {...}}`` line; the console logger prints evaluation results and the summary.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sbcore.hookspecs import hookimpl
from sbcore.io import plots


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _append(run: Any, record: dict[str, Any]) -> None:
    if not (run.is_main and run.config.log.jsonl):
        return
    with Path(run.dir, "metrics.jsonl").open("a") as f:
        f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")


@hookimpl
def sbcore_step_end(run: Any, step: int, metrics: dict[str, float]) -> None:
    _append(run, {"step": step, **metrics})
    evals = {k[5:]: v for k, v in metrics.items() if k.startswith("eval/")}
    if evals:
        shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in evals.items())
        run.echo(f"[eval @ step {step}] {shown}")


@hookimpl
def sbcore_run_end(run: Any, summary: dict[str, Any]) -> None:
    _append(run, {"summary": summary})
    path = Path(run.dir, "metrics.jsonl")
    if run.is_main and path.is_file():
        plots.run_curves(read_metrics(path), Path(run.dir, "pictures"))
    run.echo(f"run finished: {run.dir}")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The per-step records of a `metrics.jsonl` file (the summary line excluded)."""
    records = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if "summary" not in record:
                records.append(record)
    return records
