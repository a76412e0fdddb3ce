"""Training progress: tqdm's bar on a terminal, single lines now and then in a log file.

A SLURM or CI log is not a terminal: carriage-return redraws become thousands of lines. There the
progress is a line ``[name] step 1200/10000 (12%) loss 0.1234 | 41.5 steps/s | ETA 0:03:32`` at each
tenth of the run and at least `every_seconds` apart otherwise, so a run writes at most
``1 / every_fraction + elapsed / every_seconds + 2`` lines whatever its number of steps.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Progress of `total` steps from `initial`; `loss` is shown when set."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", enabled: bool = True,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 every_seconds: float = 60.0, every_fraction: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.total, self.step, self.desc, self.loss = total, initial, desc, math.nan
        self.enabled, self.clock = enabled, clock
        self.every_seconds, self.every_fraction = every_seconds, every_fraction
        self.bar = None
        if enabled and _is_terminal(self.stream):
            self.bar = tqdm(total=total, initial=initial, desc=desc, file=self.stream, dynamic_ncols=True,
                            mininterval=0.5)
        self.started = self.last_time = clock()
        self.start_step = self.printed = initial
        self.next_mark = self._mark_after(initial)

    def _mark_after(self, step: int) -> int:
        chunk = max(1, math.ceil(self.total * self.every_fraction))
        return (step // chunk + 1) * chunk

    def set_loss(self, loss: float) -> None:
        self.loss = loss
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}")

    def update(self, n: int = 1) -> None:
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
            return
        if not self.enabled:
            return
        now = self.clock()
        if self.step >= self.next_mark or now - self.last_time >= self.every_seconds:
            self._line(now)

    def _line(self, now: float) -> None:
        self.last_time, self.next_mark, self.printed = now, self._mark_after(self.step), self.step
        elapsed = now - self.started
        rate = (self.step - self.start_step) / elapsed if elapsed > 0 else math.nan
        eta = (self.total - self.step) / rate if rate > 0 else math.nan
        parts = [f"[{self.desc}] step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f}%)"]
        if math.isfinite(self.loss):
            parts[0] += f" loss {self.loss:.4g}"
        parts.append(f"{rate:.3g} steps/s" if math.isfinite(rate) else "- steps/s")
        parts.append(f"ETA {datetime.timedelta(seconds=round(eta))}" if math.isfinite(eta) else "ETA -")
        print(" | ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        """The bar's last state, or a last line unless the last line already showed this step."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.step != self.printed:
            self._line(self.clock())


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
