"""``events.jsonl`` in the run folder: starts, preemptions and the finish, one JSON object a line.

It is how `sbcore status` and the requeue test see that a job came back and from which step.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

EVENTS = "events.jsonl"


def append_event(run_dir: Path, event: str, **fields: Any) -> None:
    record = {"event": event, "time": round(time.time(), 3), **fields}
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        record.update(job=job, restart=int(os.environ.get("SLURM_RESTART_COUNT", "0")))
    with Path(run_dir, EVENTS).open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir, EVENTS)
    if not path.is_file():
        return []
    events = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:  # a write cut short by a killed process
            warnings.warn(f"{path}: line {number} is not JSON (a write cut short?); skipped", stacklevel=2)
            continue
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            warnings.warn(f"{path}: line {number} is not an event record; skipped", stacklevel=2)
            continue
        events.append(event)
    return events
