"""Progress in a log file: single lines now and then, never carriage-return redraws."""

from __future__ import annotations

import io
import itertools
import re

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.launch.local import run_local
from sbcore.train.progress import Progress

LINE = re.compile(r"^\[run\] step (\d+)/10000 \(\d+%\)( loss [\d.e+-]+)? \| [\d.e+]+ steps/s \| ETA \d+:\d\d:\d\d$")


def fake_clock(seconds_per_call: float):
    ticks = itertools.count()
    return lambda: next(ticks) * seconds_per_call


def test_a_10000_step_log_has_a_few_hundred_lines_at_most():
    """Even at one second a step (10 000 s in all), the log holds a line a minute plus one per tenth."""
    stream = io.StringIO()
    bar = Progress(10_000, desc="run", stream=stream, clock=fake_clock(1.0))
    for step in range(10_000):
        if step % 50 == 0:
            bar.set_loss(1.0 / (step + 1))
        bar.update()
    bar.close()
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert 10 <= len(lines) <= 10_000 / 60 + 10 + 2
    assert all(LINE.match(line) for line in lines), lines[:3]
    steps = [int(LINE.match(line).group(1)) for line in lines]
    assert steps == sorted(set(steps)) and steps[-1] == 10_000
    assert lines[-1].endswith("ETA 0:00:00") and "1 steps/s" in lines[-1]


def test_a_fast_run_writes_one_line_per_tenth():
    stream = io.StringIO()
    bar = Progress(10_000, desc="run", stream=stream, clock=fake_clock(1e-3))
    for _ in range(10_000):
        bar.update()
    bar.close()
    steps = [int(LINE.match(line).group(1)) for line in stream.getvalue().splitlines()]
    assert steps == list(range(1000, 10_001, 1000))


def test_a_resumed_run_counts_from_its_step_and_disabled_writes_nothing():
    stream = io.StringIO()
    bar = Progress(100, initial=90, desc="run", stream=stream, clock=fake_clock(1.0))
    for _ in range(10):
        bar.update()
    bar.close()
    assert stream.getvalue().splitlines()[-1].startswith("[run] step 100/100 (100%)")
    quiet = io.StringIO()
    bar = Progress(100, desc="run", enabled=False, stream=quiet)
    bar.update(100)
    bar.close()
    assert quiet.getvalue() == ""


def test_a_training_run_logs_progress_lines_and_true_eval_seconds(tiny_gaussian, plugins, capsys):
    raw = merge(tiny_gaussian, parse_overrides(["train.progress=true", "train.steps=200", "train.log_every=20"]))
    summary = run_local(structure_config(raw, plugins.registry), None, plugins)
    err = capsys.readouterr().err
    progress = [line for line in err.splitlines() if line.startswith("[tiny] step")]
    assert "\r" not in err and 1 <= len(progress) <= 12 and progress[-1].startswith("[tiny] step 200/200")
    assert summary["eval_seconds"] > 0  # the final evaluation ran
