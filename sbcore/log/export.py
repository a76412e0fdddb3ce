"""``sbcore export run=DIR``: the metrics of ``metrics.jsonl`` as one CSV table.

One row per logged step (training and evaluation records of the same step are merged), a
``step`` column first and then every metric name in order of first appearance; a metric missing
at a step is an empty cell.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sbcore.log.plugin import read_metrics


def metrics_to_csv(run_dir: Path, out: Path | None = None) -> Path:
    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    rows: dict[int, dict[str, object]] = {}
    columns: dict[str, None] = {"step": None}
    for record in records:
        rows.setdefault(record["step"], {"step": record["step"]}).update(record)
        columns.update(dict.fromkeys(record))
    out = Path(out) if out else Path(run_dir) / "metrics.csv"
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
        writer.writeheader()
        for step in sorted(rows):
            writer.writerow(rows[step])
    tmp.replace(out)
    return out
