"""``events.jsonl`` in the run folder: starts, preemptions and the finish, one JSON object a line.

It is how `sbcore status` and the requeue test see that a job came back and from which step.
"""

from __future__ import annotations

import json
import os
import time
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
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
