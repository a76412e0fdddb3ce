"""Command options: a bad value of any command is refused with exit status 2 and a line naming the
option, what was expected and what was given, before anything is read or written; refused commands
leave every run folder byte-identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from sbcore import cli, hookimpl, sample
from sbcore.cli import main
from sbcore.options import positive
from sbcore.plugins import create_plugins
from sbcore.testing import cli_failure, run_cli, snapshot, tiny_run_config, write_tiny_config

TINY = tiny_run_config(train={"checkpoint_every": 2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    write_tiny_config(root, **TINY)
    assert main(["run", str(root / "tiny.yaml")]) == 0
    return root / "runs" / "tiny"


@pytest.fixture
def run_dir(trained, tmp_path):
    """A fresh copy of the trained run (each test may damage its own)."""
    return Path(shutil.copytree(trained, tmp_path / "tiny"))


def _options_cases(run: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    r = f"run={run}"
    return {
        "sample n=-5": (["sample", r, "n=-5"], "expected a number > 0, got -5 @ sbcore sample n"),
        "sample n=abc": (["sample", r, "n=abc"], "got 'abc' @ sbcore sample n"),
        "sample steps=-2": (["sample", r, "steps=-2"], "expected a number > 0, got -2 @ sbcore sample steps"),
        "sample steps=0": (["sample", r, "steps=0"], "expected a number > 0, got 0 @ sbcore sample steps"),
        "sample out=x.txt": (["sample", r, "n=4", f"out={tmp / 'x.txt'}"], "ending in .npz"),
        "sample out=noext": (["sample", r, "n=4", f"out={tmp / 'samples'}"], "ending in .npz"),
        "sample seed=1.5": (["sample", r, "seed=1.5"], "expected an integer, got '1.5' @ sbcore sample seed"),
        "sample direction": (["sample", r, "direction=sideways"], "@ sbcore sample direction"),
        "sample typo": (["sample", r, "stpes=3"], "did you mean 'steps'?"),
        "sample twice": (["sample", r, "n=3", "n=4"], "given twice"),
        "sample no run": (["sample", "n=3"], "required option missing: run="),
        "eval n=abc": (["eval", r, "n=abc"], "got 'abc' @ sbcore eval n"),
        "eval n=0": (["eval", r, "n=0"], "expected a number > 0, got 0 @ sbcore eval n"),
        "eval steps=-1": (["eval", r, "steps=-1"], "@ sbcore eval steps"),
        "eval sampler ddim": (["eval", r, "n=4", "sampler.kind=ddim"], "needs a deterministic path"),
        "eval sampler exponential": (["eval", r, "n=4", "sampler.kind=exponential"], "exact bridge transition"),
        "sample sampler.steps=0": (["sample", r, "n=2", "sampler.steps=0"], "steps must be >= 1, got 0"),
        "eval metrics=[1]": (["eval", r, "n=4", "metrics=[1]"], "metrics: expected names"),
        "status extra": (["status", r, "verbose=1"], "unknown option 'verbose'"),
        "status stray": (["status", r, "now"], "expected key=value, got 'now'"),
        "plugins stray": (["plugins", "all"], "expected key=value"),
        "shards count=0": (["shards", "write", "data.source=toy2d", f"out={tmp / 's-%06d.tar'}", "count=0"],
                           "expected a number > 0, got 0 @ sbcore shards write count"),
        "shards format": (["shards", "write", "data.source=toy2d", f"out={tmp / 's-%06d.tar'}", "format=jpg"],
                          "@ sbcore shards write format"),
        "shards out=15": (["shards", "write", "data.source=toy2d", "out=15", "count=8"],
                          "expected a printf pattern with a shard number"),
        "shards png of vectors": (["shards", "write", "data.source=toy2d", f"out={tmp / 's-%06d.tar'}", "count=8",
                                   "format=png"], "png needs uint8 images"),
        "translate n=0": (["translate", f"source={run}", f"target={run}", "n=0"],
                          "expected a number > 0, got 0 @ sbcore translate n"),
        "translate cycle": (["translate", f"source={run}", f"target={run}", "cycle=maybe"],
                            "expected true or false, got 'maybe' @ sbcore translate cycle"),
        "translate both": (["translate", f"source={run}", f"target={run}", "n=3", f"input={run / 'config.yaml'}"],
                           "not both"),
        "bench dims=0": (["bench", "gaussian", "dims=0"], "@ sbcore bench gaussian dims"),
        "bench method": (["bench", "gaussian", "method=imf,xyz"], "xyz"),
        "bench n=-1": (["bench", "gaussian", "n=-1"], "@ sbcore bench gaussian n"),
    }


CASES = list(_options_cases(Path("R"), Path("T")))


@pytest.mark.parametrize("case", CASES)
def test_bad_option_is_refused_before_anything_is_written(run_dir, tmp_path, case):
    args, fragment = _options_cases(run_dir, tmp_path)[case]
    before, outside = snapshot(run_dir), sorted(p.name for p in tmp_path.iterdir())
    cli_failure(args, 2, fragment)
    assert snapshot(run_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == outside


def test_sample_with_nan_inputs_is_refused(run_dir, tmp_path):
    np.save(tmp_path / "x.npy", np.array([[0.0, np.nan], [1.0, 2.0]], np.float32))
    before = snapshot(run_dir)
    cli_failure(["sample", f"run={run_dir}", f"input={tmp_path / 'x.npy'}", f"out={tmp_path / 'o.npz'}"], 2,
                "NaN or infinite values (1 of 4)")
    assert snapshot(run_dir) == before and not (tmp_path / "o.npz").exists()


def test_sample_and_eval_on_weights_that_do_not_fit(run_dir, tmp_path):
    raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    raw["network"]["hidden"] = 32
    (run_dir / "config.yaml").write_text(yaml.safe_dump(raw))
    before = snapshot(run_dir)
    cli_failure(["sample", f"run={run_dir}", "n=4", f"out={tmp_path / 's.npz'}"], 1, "step_00000004.safetensors",
                "do not fit")
    cli_failure(["eval", f"run={run_dir}", "n=4"], 1, "do not fit")
    assert snapshot(run_dir) == before


class _Resolution:
    """A method's sample option with a validator, as sb-dbfs declares resolution."""

    __name__ = "resolution_option"

    @hookimpl
    def sbcore_sample_options(self, run):
        return {"resolution": (int, "grid size", positive)}


def test_plugin_sample_option_is_validated(run_dir, monkeypatch):
    loaded = create_plugins(extra=[_Resolution()])
    monkeypatch.setattr(cli, "get_plugins", lambda: loaded)
    monkeypatch.setattr(sample, "get_plugins", lambda: loaded)
    before = snapshot(run_dir)
    for bad in ("resolution=0", "resolution=-3", "resolution=abc"):
        cli_failure(["sample", f"run={run_dir}", "n=2", bad], 2, "@ sbcore sample resolution")
    assert snapshot(run_dir) == before


def test_dbfs_resolution_zero_is_refused():
    pytest.importorskip("sb_dbfs")
    from sb_dbfs.plugin import sbcore_sample_options

    from sbcore.options import parse_options, with_extra
    from sbcore.sample import SampleOptions

    class Run:
        class config:
            plugin = "dbfs"

    extra = sbcore_sample_options(Run)
    schema = with_extra(SampleOptions, extra)
    with pytest.raises(ValueError, match="expected a number > 0, got 0 @ sbcore sample resolution"):
        parse_options("sbcore sample", schema, ["run=.", "resolution=0"])


def test_good_options_still_work(run_dir, tmp_path):
    code, out, err = run_cli(["sample", f"run={run_dir}", "n=3", "steps=2", f"out={tmp_path / 's.npz'}"])
    assert code == 0, err
    assert np.load(tmp_path / "s.npz")["x1"].shape == (3, 2)


@pytest.mark.parametrize("text", ["", "garbage", "[1, 2]", '{"world_size": 1'])
def test_eval_with_a_torn_batch_plan(run_dir, text):
    (run_dir / "distributed.json").write_text(text)
    with pytest.warns(UserWarning, match="distributed.json: not a JSON object"):
        code, out, err = run_cli(["eval", f"run={run_dir}", "n=4"])
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.parametrize("kind", ["i2sb", "sdsb_chain"])
def test_a_sampler_that_cannot_sample_the_run_is_refused_in_one_line(run_dir, kind, capsys):
    """A sampler chosen at evaluation time that does not fit the run's process or prediction: exit 2, one line."""
    before = snapshot(run_dir)
    for command in (["eval", f"run={run_dir}", "n=4"], ["sample", f"run={run_dir}", "n=4"]):
        assert main([*command, f"sampler.kind={kind}"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"sampler.kind={kind} cannot sample this run" in err, err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("scale", ["nan", "inf", "-inf"])
def test_a_guidance_scale_must_be_finite(scale):
    from sbcore.errors import UserError
    from sbcore.sampler.guidance import make_guidance

    with pytest.raises(UserError, match="expected a finite number"):
        make_guidance(3, {"scale": float(scale)}, registry=None)
