"""Checks that a command fails cleanly: the exit status, a few lines on stderr without a traceback,
and run folders left byte-identical. For the core's fault tests and for a plugin's own commands::

    from sbcore.testing import cli_failure, snapshot

    before = snapshot(run_dir)
    cli_failure(["my-command", f"run={run_dir}", "n=-1"], 2, "expected a number > 0")
    assert snapshot(run_dir) == before
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes (None when the folder does not exist)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``sbcore ARGS`` run in this process through `sbcore.cli.main`."""
    from sbcore.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, unknown command
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def cli_failure(args: list[str], code: int, *fragments: str, max_lines: int = 8) -> str:
    """Run the command; assert status `code`, at most `max_lines` lines starting ``sbcore:`` that hold
    every fragment, and no traceback. Returns stderr."""
    got, _, err = run_cli(args)
    assert got == code, f"exit status {got}, expected {code}:\n{err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and "warning:" not in line]
    assert 1 <= len(lines) <= max_lines and lines[0].startswith("sbcore: "), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    return err
