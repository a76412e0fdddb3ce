"""Command options (`sbcore.options`): typed parsing, every problem at once, the config's messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from sbcore.options import OptionError, existing_dir, option, parse_options, positive, suffix, usage, with_extra


@attrs.frozen(kw_only=True)
class Opts:
    run: Path = option(help="run folder", validator=existing_dir)
    n: int | Literal["all"] = option(2000, help="samples", validator=positive)
    out: Path | None = option(None, help="output", validator=suffix(".npz"))
    path: bool = option(False, help="keep the path")
    lr: float = option(1.0, help="a float", validator=positive)
    sampler: dict[str, Any] = option(factory=dict, help="sampler overrides")


def test_values_are_read_by_type(tmp_path: Path) -> None:
    got = parse_options("sbcore x", Opts, [f"run={tmp_path}", "n=all", "path=yes", "lr=3e-4",
                                           "sampler.kind=euler", "sampler.steps=50", "out=a.npz"])
    assert got == Opts(run=tmp_path, n="all", path=True, lr=3e-4, out=Path("a.npz"),
                       sampler={"kind": "euler", "steps": 50})
    assert parse_options("sbcore x", Opts, [f"run={tmp_path}", "n=7"]).n == 7


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(OptionError) as info:
        parse_options("sbcore x", Opts, ["run=/no/such", "n=-5", "nn=3", "out=x.txt", "path=maybe",
                                         "lr=inf", "stray", "lr=2"])
    lines = info.value.lines
    assert "run folder not found: /no/such @ sbcore x run" in lines
    assert "expected a number > 0, got -5 @ sbcore x n" in lines
    assert "unknown option 'nn' (did you mean 'n'?) @ sbcore x" in lines
    assert "expected a file name ending in .npz, got 'x.txt' @ sbcore x out" in lines
    assert "expected true or false, got 'maybe' @ sbcore x path" in lines
    assert "expected a finite number, got 'inf' @ sbcore x lr" in lines
    assert "expected key=value, got 'stray' @ sbcore x" in lines
    assert "option 'lr' given twice @ sbcore x lr" in lines
    assert str(info.value).startswith("invalid options of sbcore x:")


@pytest.mark.parametrize("item", ["n=abc", "n=0", "n=1.5", "n=", "n=nan"])
def test_bad_counts(tmp_path: Path, item: str) -> None:
    with pytest.raises(OptionError, match="@ sbcore x n"):
        parse_options("sbcore x", Opts, [f"run={tmp_path}", item])


def test_required_and_usage() -> None:
    with pytest.raises(OptionError, match=r"required option missing: run=\.\.\. @ sbcore x"):
        parse_options("sbcore x", Opts, [])
    assert usage("sbcore x", Opts).startswith("sbcore x run=... [n=2000]")


def test_plugin_options_extend_the_schema(tmp_path: Path) -> None:
    schema = with_extra(Opts, {"resolution": (int, "grid size")})
    assert parse_options("sbcore x", schema, [f"run={tmp_path}", "resolution=64"]).resolution == 64
    with pytest.raises(OptionError, match="expected an integer or none, got 'big'"):
        parse_options("sbcore x", schema, [f"run={tmp_path}", "resolution=big"])
