"""Built-in loggers, implemented as plugins on the run-lifecycle hooks.

``metrics.jsonl`` holds one JSON object per logged step (``{"step": N, ...metrics}``) and a final
``{"summary": {...}}`` line; the console logger prints evaluation results and the summary. Every
line is strict JSON (non-finite numbers are written as strings), readers skip a torn last line
with a warning, and a resume cuts the records after its checkpoint's step.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from sbcore.config_text import shorten
from sbcore.hookspecs import hookimpl
from sbcore.io import plots
from sbcore.io.files import atomic_write


def _clean(value: Any) -> Any:
    """NaN and infinities become the strings "nan", "inf", "-inf" (JSON has no such numbers), at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _append(run: Any, record: dict[str, Any]) -> None:
    if not (run.is_main and run.config.log.jsonl):
        return
    with Path(run.dir, "metrics.jsonl").open("a") as f:
        f.write(json.dumps(_clean(record), allow_nan=False) + "\n")


@hookimpl
def sbcore_step_end(run: Any, step: int, metrics: dict[str, float]) -> None:
    _append(run, {"step": step, **metrics})
    evals = {k[5:]: v for k, v in metrics.items() if k.startswith("eval/")}
    if evals:
        run.echo("\n".join(eval_lines(step, evals)))


def eval_lines(step: int, evals: dict[str, Any]) -> list[str]:
    """An evaluation as a short table: one row per metric, one column per direction (others on a line)."""
    directions = [d for d in ("forward", "backward") if any(k.startswith(f"{d}/") for k in evals)]
    rows: dict[str, dict[str, str]] = {}
    other: list[str] = []
    for key, value in evals.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        head, _, name = key.partition("/")
        if head in directions and name:
            rows.setdefault(name, {})[head] = shown
        else:
            other.append(f"{key}={shown}")
    lines = [f"[eval @ step {step}]" + (f" {'  '.join(other)}" if other else "")]
    if rows:
        width = max(len(name) for name in rows)
        lines.append("  " + " " * width + "".join(f"  {d:>10}" for d in directions))
        lines += ["  " + name.ljust(width) + "".join(f"  {r.get(d, '-'):>10}" for d in directions)
                  for name, r in rows.items()]
    return lines


@hookimpl
def sbcore_run_end(run: Any, summary: dict[str, Any]) -> None:
    _append(run, {"summary": summary})
    path = Path(run.dir, "metrics.jsonl")
    if run.is_main and path.is_file():
        plots.run_curves(read_metrics(path), Path(run.dir, "pictures"))
    run.echo(f"run finished: {run.dir}")


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for every valid line; a torn or damaged line (a killed writer) is skipped with a warning."""
    out = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            warnings.warn(f"{path}: line {number} is not a JSON object (a write cut short?); skipped", stacklevel=3)
            continue
        out.append((line, record))
    return out


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The per-step records of a `metrics.jsonl` file (the summary line excluded); a record without an
    integer ``step`` (edited by hand, or another program's) is skipped with a warning like a torn line."""
    out = []
    for line, record in _records(Path(path)):
        if "summary" in record:
            continue
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            warnings.warn(f"{path}: a record without a step number ({shorten(line, 80)}); skipped", stacklevel=2)
            continue
        out.append(record)
    return out


def truncate_metrics(path: str | Path, step: int) -> None:
    """Drop the records after `step` (and damaged lines), atomically: what a resume from `step` repeats."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [line for line, record in _records(path)
            if not isinstance(record.get("step"), int) or record["step"] <= step]
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(f"{line}\n" for line in kept)))
