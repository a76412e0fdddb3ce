"""Start-up time of the command line against ``python -c "import torch"``, measured in one run.

    python benchmarks/startup.py [--repeats 5]

Each command runs `repeats` times, interleaved (so a busy machine slows all of them alike), and
the median wall time is reported with its ratio to the torch import. ``--version`` and the core
commands' ``--help`` load no plugins; the top-level ``--help`` loads every installed plugin (to
list their commands), shown once with all of them and once with ``SBCORE_PLUGINS=`` (built-ins only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": ([sys.executable, "-c", "import torch"], {}),
    "sbcore --version": ([sys.executable, "-m", "sbcore", "--version"], {}),
    "sbcore run --help": ([sys.executable, "-m", "sbcore", "run", "--help"], {}),
    "sbcore --help (all plugins)": ([sys.executable, "-m", "sbcore", "--help"], {}),
    "sbcore --help (built-ins only)": ([sys.executable, "-m", "sbcore", "--help"], {"SBCORE_PLUGINS": ""}),
}


def measure(repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, (command, env) in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times = measure(args.repeats)
    base = statistics.median(times["import torch"])
    print(f"median of {args.repeats} runs (interleaved); ratio to `python -c \"import torch\"`")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:32s} {median:7.2f} s   x{median / base:.2f}")


if __name__ == "__main__":
    main()
