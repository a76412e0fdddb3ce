"""Plugin isolation: a plugin whose command hook, command, sample-option hook or component constructor
raises is reported once, by name, and every other command keeps working."""

from __future__ import annotations

import argparse

import pytest
import torch

from sbcore import cli, hookimpl, sample
from sbcore.cli import main
from sbcore.network.mlp import MLP
from sbcore.plugins import create_plugins
from sbcore.testing import cli_failure, run_cli, write_tiny_config


@pytest.fixture
def cfg(tmp_path):
    return write_tiny_config(tmp_path)


def _hello(args: argparse.Namespace) -> int:
    print("hello")
    return 0


class BrokenCommands:
    """Adds one command, then raises."""

    __name__ = "broken_commands"

    @hookimpl
    def sbcore_add_commands(self, subparsers):
        subparsers.add_parser("half").set_defaults(handler=_hello)
        raise RuntimeError("cannot add commands")


class Hello:
    __name__ = "hello"

    @hookimpl
    def sbcore_add_commands(self, subparsers):
        parser = subparsers.add_parser("hello")
        parser.add_argument("items", nargs="*")
        parser.set_defaults(handler=_hello)


def _crash(args: argparse.Namespace) -> int:
    return 1 // 0


class Crashing:
    __name__ = "crashing"

    @hookimpl
    def sbcore_add_commands(self, subparsers):
        parser = subparsers.add_parser("crash")
        parser.add_argument("items", nargs="*")
        parser.set_defaults(handler=_crash)


class Clashing:
    """Takes a command name another plugin has (argparse raises)."""

    __name__ = "clashing"

    @hookimpl
    def sbcore_add_commands(self, subparsers):
        subparsers.add_parser("hello")


@pytest.fixture
def use(monkeypatch):
    def install(*extra):
        loaded = create_plugins(extra=list(extra))
        monkeypatch.setattr(cli, "get_plugins", lambda: loaded)
        monkeypatch.setattr(sample, "get_plugins", lambda: loaded)
        return loaded
    return install


def test_command_hook_that_raises_leaves_the_other_commands_working(use, tmp_path):
    use(BrokenCommands(), Hello())
    code, out, err = run_cli(["hello"])
    assert code == 0 and out == "hello\n"
    assert err.count("broken_commands") == 1 and "cannot add commands" in err and "Traceback" not in err
    code, out, err = run_cli(["status", f"run={tmp_path}"])
    assert code == 0 and "latest checkpoint: none" in out
    code, _, err = run_cli(["half"])  # the half-added command is gone with its plugin
    assert code == 2 and "invalid choice: 'half'" in err


def test_command_name_clash_is_reported_by_name(use):
    use(Hello(), Clashing())
    code, out, err = run_cli(["hello"])
    assert code == 0 and out == "hello\n" and err.count("plugin 'clashing'") == 1
    assert "command 'hello' is taken already (by hello)" in err


def test_plugin_command_that_raises_names_the_plugin(use):
    use(Crashing(), Hello())
    cli_failure(["crash"], 1, "plugin 'crashing'", "command 'crash' failed", "ZeroDivisionError")
    assert run_cli(["hello"])[0] == 0
    code, _, err = run_cli(["--debug", "crash"])
    assert code == 1 and "Traceback" in err


class BadSampleOptions:
    __name__ = "bad_sample_options"

    @hookimpl
    def sbcore_sample_options(self, run):
        raise KeyError("no such option table")


class WrongSampleOptions:
    __name__ = "wrong_sample_options"

    @hookimpl
    def sbcore_sample_options(self, run):
        return ["resolution"]


def test_sample_option_hook_that_raises_or_returns_garbage_is_left_out(use, cfg, tmp_path):
    assert main(["run", str(cfg)]) == 0
    use(BadSampleOptions(), WrongSampleOptions())
    code, out, err = run_cli(["sample", f"run={tmp_path / 'runs' / 'tiny'}", "n=4", f"out={tmp_path / 's.npz'}"])
    assert code == 0 and (tmp_path / "s.npz").is_file(), err
    assert err.count("bad_sample_options") == 1 and err.count("wrong_sample_options") == 1
    assert "Traceback" not in err


class Exploding(MLP):
    def __init__(self, **kwargs):
        raise RuntimeError("CUDA kernel image not found")


class ExplodingPlugin:
    __name__ = "exploding"

    @hookimpl
    def sbcore_register(self, registry):
        registry.add("network", "exploding", Exploding)


def test_component_constructor_that_raises_names_the_plugin(use, cfg, tmp_path):
    use(ExplodingPlugin())
    cli_failure(["run", str(cfg), "network=exploding"], 1, "plugin 'exploding'", "network 'exploding'",
                "CUDA kernel image not found")
    assert not (tmp_path / "runs").exists()


def test_core_component_bugs_keep_their_traceback(plugins):
    from sbcore.config import NetworkSpec

    with pytest.raises(TypeError):
        NetworkSpec("mlp", {"hidden": 8}).build(plugins.registry, shape=(2,), bogus=torch.zeros(1))
