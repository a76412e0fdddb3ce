"""A newcomer's path: runnable configs from `sbcore config`, `sbcore run -`, config files resolved,
`plugin=` by plugin name, and the example configs the packages ship (`sbcore examples`)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import yaml

from sbcore.cli import main
from sbcore.plugins import get_plugins
from sbcore.train.bridge_matching import BridgeMatching

FAST = ["train.threads=1", "train.progress=false", "train.eval_samples=64", "train.batch_size=16",
        "log.console=false"]
#: a few steps of each method (alternating methods: their stage keys, since train.steps is their total);
#: any other installed method (a third-party plugin) gets train.steps=3.
FEW_STEPS = {
    "bm": ["train.steps=3"],
    "ddib": ["train.steps=3"],
    "i2sb": ["train.steps=3"],
    "dsbm": ["method.outer_iters=2", "method.inner_iters=2", "method.cache_size=32", "method.cache_chunk=32"],
    "dbfs": ["method.inner_iters=3", "method.cache_size=32", "method.cache_chunk=32"],
    "sdsb": ["method.epochs=2", "method.steps_per_epoch=2", "method.cache_size=256", "method.cache_chunk=256",
             "method.refresh_every=2"],
}


def config_text(capsys, *items: str) -> str:
    assert main(["config", *items]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("method", get_plugins().registry.names("method"))
def test_config_of_every_plugin_runs_from_stdin(method, capsys, monkeypatch, tmp_path):
    """`sbcore config plugin=X | sbcore run -` with a few steps: the printed config runs as it is."""
    text = config_text(capsys, f"plugin={method}")
    printed = yaml.safe_load(text)
    assert printed["plugin"] == method and printed["network"]["kind"] and printed["sampler"]["kind"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["run", "-", f"out={tmp_path}", *FAST, *FEW_STEPS.get(method, ["train.steps=3"])]) == 0
    (folder,) = tmp_path.iterdir()
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    for section in ("process", "network", "sampler"):  # the run keeps what was given, the printout every default
        assert saved[section].items() <= printed[section].items(), section
    assert list((folder / "checkpoints").glob("step_*.safetensors"))


def test_the_shell_pipe_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = (f"{sys.executable} -m sbcore config plugin=bm | {sys.executable} -m sbcore run - "
               + " ".join([f"out={tmp_path}", "name=piped", *FAST, *FEW_STEPS["bm"]]))
    result = subprocess.run(command, shell=True, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "piped" / "config.yaml").is_file()


def test_config_file_is_shown_resolved_with_overrides(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("plugin: bm\ndata: {x0: {source: gaussian, dim: 3}, x1: {source: gaussian, dim: 3}}\n")
    shown = yaml.safe_load(config_text(capsys, str(path), "train.lr=0.01", "network={kind: mlp, hidden: 7}"))
    assert shown["data"]["x0"] == {"source": "gaussian", "dim": 3, "mean": 0.0, "std": 1.0, "cov": None,
                                   "spd_seed": None}
    assert shown["train"]["lr"] == 0.01 and shown["network"]["hidden"] == 7 and shown["network"]["kind"] == "mlp"
    assert shown["train"]["steps"] is None  # left to the method: 1000 for bm, the stages for alternating methods
    assert yaml.safe_load(config_text(capsys, str(path), "plugin=dsbm"))["method"]["variant"] == "imf"


def test_config_options_are_checked(capsys):
    assert main(["config", "plugin=bm", "plugin=dsbm"]) == 2
    assert "option 'plugin' given twice" in capsys.readouterr().err


class Whorl(BridgeMatching):
    """A method registered under another name than its plugin's."""


class WhorlPlugin:
    __name__ = "whorl"

    @staticmethod
    def sbcore_register(registry):
        registry.add("method", "whorl_bm", Whorl)


def test_plugin_accepts_the_plugin_name_and_lists_both_names():
    from sbcore.config import structure_config
    from sbcore.config_text import ConfigError
    from sbcore.hookspecs import hookimpl
    from sbcore.plugins import create_plugins

    WhorlPlugin.sbcore_register = staticmethod(hookimpl(WhorlPlugin.sbcore_register))
    plugins = create_plugins(extra=[WhorlPlugin()])
    data = {"x0": {"source": "gaussian", "dim": 2}, "x1": {"source": "gaussian", "dim": 2}}
    config = structure_config({"plugin": "whorl", "data": data}, plugins.registry)
    assert config.plugin == "whorl_bm"  # the run folder's config names the method
    with pytest.raises(ConfigError) as info:
        structure_config({"plugin": "whrl", "data": data}, plugins.registry)
    message = str(info.value)
    assert "whorl (= whorl_bm)" in message and "bm, " in message and "Did you mean 'whorl'?" in message
    assert "train (= bm)" not in message  # the core's own plugins are not aliases


def test_examples_list_and_copy_without_overwriting(capsys, monkeypatch, tmp_path):
    assert main(["examples"]) == 0
    listing = capsys.readouterr().out
    for method in FEW_STEPS:
        assert f"{method}:" in listing
    assert "mnist-sr4x-pool.yaml" in listing and "moons.yaml" in listing
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "plugin=i2sb", "copy=mnist-sr4x-pool"]) == 0
    copied = tmp_path / "mnist-sr4x-pool.yaml"
    shipped = get_plugins().registry.get("method", "i2sb")
    assert yaml.safe_load(copied.read_text())["plugin"] == "i2sb" and shipped.default_example == copied.name
    copied.write_text("mine")
    assert main(["examples", "plugin=i2sb", "copy=mnist-sr4x-pool.yaml"]) == 2
    assert "exists already" in capsys.readouterr().err and copied.read_text() == "mine"
    assert main(["examples", "plugin=i2sb", "copy=nope"]) == 2
    assert "available: fashion-blur-gauss.yaml" in capsys.readouterr().err


def test_example_run_names_are_unique():
    """Two examples never write the same runs/NAME (their `name:`, else their file name)."""
    from sbcore.example_configs import examples_folder, list_examples

    plugins = get_plugins()
    seen: dict[str, str] = {}
    for method in plugins.registry.names("method"):
        folder = examples_folder(plugins, method)
        for name in list_examples(plugins, method):
            raw = yaml.safe_load((folder / name).read_text()) or {}
            run = raw.get("name") or name.rsplit(".", 1)[0]
            assert run not in seen, f"{method}/{name} and {seen[run]} both write runs/{run}"
            seen[run] = f"{method}/{name}"
