"""``sbcore export``: options checked before anything is read or written, the CSV table, and format=diffusers
refusing what it cannot represent (the diffusers round trip itself is sb-ddib's test_ddib_export.py)."""

from __future__ import annotations

import csv

import pytest
import yaml

from sbcore.cli import main


@pytest.fixture
def run_dir(tiny_gaussian, tmp_path):
    raw = {**tiny_gaussian, "train": {**tiny_gaussian["train"], "steps": 5, "checkpoint_every": 0}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    return tmp_path / "runs" / "tiny"


def test_csv_is_the_default_format(run_dir, tmp_path):
    out = tmp_path / "table.csv"
    assert main(["export", f"run={run_dir}", f"out={out}"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["step"] == "5" and float(rows[0]["loss"]) > 0


@pytest.mark.parametrize(("items", "message"), [
    (["format=onnx"], "expected csv or diffusers, got 'onnx' @ sbcore export format"),
    (["out=table.txt"], "format=csv writes a .csv file"),
    (["format=diffusers"], "format=diffusers needs out=DIR"),
    (["formt=csv"], "unknown option 'formt' (did you mean 'format'?)"),
])
def test_bad_options_are_refused_before_anything_is_written(run_dir, items, message, capsys):
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["export", f"run={run_dir}", *items]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_diffusers_export_says_what_it_supports(run_dir, tmp_path, capsys):
    pytest.importorskip("diffusers", reason="diffusers is in the test extra")
    out = tmp_path / "pipe"
    assert main(["export", f"run={run_dir}", "format=diffusers", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "format=diffusers exports runs on process: vp with steps: N" in err and "BrownianBridge" in err
    assert not out.exists() and not list(tmp_path.glob(".pipe*"))
    out.mkdir()
    assert main(["export", f"run={run_dir}", "format=diffusers", f"out={out}"]) == 2
    assert "exists; export writes a new folder" in capsys.readouterr().err
