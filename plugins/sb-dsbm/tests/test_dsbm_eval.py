"""A DSBM run (trained with its SDE sampler) evaluated with an ODE sampler chosen at evaluation time, as
DSBM's test script does; the choice is recorded in eval.json and a wrong name lists the valid ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.config_text import read_yaml_file
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "dsbm" / "gaussian.yaml"


@pytest.fixture(scope="module")
def dsbm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dsbm")
    raw = read_yaml_file(EXAMPLE)
    raw.update(out=str(tmp), name="g")
    raw["method"].update(inner_iters=3, outer_iters=2, cache_size=16, refresh_every=2)
    raw["network"] = {"kind": "mlp", "hidden": 16, "layers": 1}
    raw["train"] = {"batch_size": 8, "log_every": 3, "eval_samples": 16, "progress": False, "threads": 1}
    raw["log"] = {"console": False}
    plugins = create_plugins()
    run_local(structure_config(raw, plugins.registry), None, plugins)
    return tmp / "g"


def test_eval_with_an_ode_sampler_is_recorded(dsbm_run, capsys):
    assert main(["eval", f"run={dsbm_run}", "n=64", "metrics=w2", "sampler.kind=euler", "sampler.steps=50"]) == 0
    record = json.loads((dsbm_run / "eval.json").read_text())
    assert record["sampler"] == {"kind": "euler", "steps": 50}
    assert record["nfe"] == {"forward": 50, "backward": 50} and record["split"] == "test"
    assert "sampler euler steps=50" in capsys.readouterr().out
    assert main(["eval", f"run={dsbm_run}", "sampler.kind=nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown sampler 'nosuch'" in err and "euler_maruyama" in err and "euler" in err
