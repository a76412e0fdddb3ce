"""The documentation's commands run: every fenced block marked ``<!-- runnable -->`` in docs/*.md is
executed, in page order, in one fresh folder per page (`bash -e`, the installed `sbcore` on PATH).
The site itself is built with ``mkdocs build --strict`` by scripts/test.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"<!-- runnable -->\n```(bash|python)\n(.*?)```", re.S)


def runnable(page: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


PAGES = [p for p in sorted(DOCS.glob("*.md")) if runnable(p)]


def test_some_pages_have_runnable_blocks():
    assert {p.name for p in PAGES} >= {"getting-started.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_runnable_blocks_run(page, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    for number, (language, code) in enumerate(runnable(page), 1):
        command = ["bash", "-e", "-o", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{page.name}, runnable block {number}:\n{code}\n{result.stderr[-3000:]}"
