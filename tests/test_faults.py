"""Bad inputs and faults: each ends with its exit status, a short message without a traceback, and a
run folder that is unchanged (or never created); nothing that was saved is lost."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from sbcore import cli, hookimpl
from sbcore import plugins as plugins_module
from sbcore.cli import main
from sbcore.io import checkpoint as ckpt
from sbcore.log.plugin import read_metrics, truncate_metrics
from sbcore.network.mlp import MLP
from sbcore.plugins import create_plugins
from sbcore.testing import tiny_run_config, write_tiny_config

TINY = tiny_run_config(process={"kind": "brownian", "sigma": 1.0}, train={"steps": 6, "checkpoint_every": 2})


@pytest.fixture
def cfg(tmp_path):
    """A tiny run's config file (out=tmp_path/runs)."""
    return write_tiny_config(tmp_path, **TINY)


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def clean_failure(capsys, args: list[str], code: int, *fragments: str) -> str:
    """Run the CLI in this process; assert its status, a message of a few lines naming `fragments`, no traceback."""
    got = main(args)
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "warning: plugin" not in line]
    assert 1 <= len(lines) <= 8 and lines[0].startswith("sbcore: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ---- bad config and command line: exit 2, no run folder --------------------------------------------


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _arrays(path: Path | str) -> str:
    return f"data.x1={{source: arrays, path: {path}}}"


def _truncated(path: Path) -> str:
    np.savez(path, x=np.zeros((50, 2), np.float32))
    path.write_bytes(path.read_bytes()[:100])
    return str(path)


BAD_RUN = {
    "unknown key": (lambda t: ["train.stpes=5"], "unknown key 'stpes' (did you mean 'steps'?)"),
    "malformed override": (lambda t: ["train.steps=[1"], "override 'train.steps=[1'"),
    "nan lr": (lambda t: ["train.lr=.nan"], "expected a finite number, got nan @ config.train.lr"),
    "zero width": (lambda t: ["network.hidden=0"], "hidden must be >= 1"),
    "wrong type": (lambda t: ["train.batch_size=big"], "expected an integer, got str 'big' @ config.train.batch_size"),
    "unknown network": (lambda t: ["network.kind=mpl"], "Did you mean 'mlp'?"),
    "unknown plugin": (lambda t: ["plugin=bmm"], "unknown plugin 'bmm'"),
    "unknown sampler": (lambda t: ["sampler.kind=rk99"], "unknown sampler 'rk99'"),
    "bad resume value": (lambda t: ["resume=again"], "config.resume"),
    "missing device": (lambda t: ["train.device=cuda:99"], "train.device: 'cuda:99' is not available"),
    "device typo": (lambda t: ["train.device=gpu0"], "train.device: 'gpu0'"),
    "name escapes out": (lambda t: ["name=../escape"], "outside out="),
    "absolute name": (lambda t: [f"name={t / 'abs'}"], "outside out="),
    "data file missing": (lambda t: [_arrays(t / "nope.npz")], "nope.npz: file not found"),
    "empty npz": (lambda t: [_arrays(_npz(t / "e.npz"))], "e.npz: holds no arrays"),
    "truncated npz": (lambda t: [_arrays(_truncated(t / "cut.npz"))], "cut.npz: cannot be read"),
    "string dtype": (lambda t: [_arrays(_npz(t / "s.npz", x=np.array([["a", "b"]])))], "s.npz"),
    "nan values": (lambda t: [_arrays(_npz(t / "n.npz", x=np.full((4, 2), np.nan)))], "NaN"),
    "unsupported suffix": (lambda t: [_arrays(t / "d.txt")], "unsupported file type '.txt'"),
    "shape mismatch": (lambda t: ["data.x0.dim=3"], "data.x0 has shape (3,) but data.x1 has (2,)"),
    "unknown toy": (lambda t: ["data.x1.name=spiralz"], "spiralz"),
    "pipe url": (lambda t: ["data.x1={source: shards, urls: 'pipe:echo hi'}"], "allow_pipe: true"),
    "two config files": (lambda t: ["other.yaml"], "at most one config file"),
}


@pytest.mark.parametrize("case", list(BAD_RUN))
def test_bad_run_input_exits_2_before_any_folder(case, cfg, tmp_path, capsys):
    make_args, fragment = BAD_RUN[case]
    clean_failure(capsys, ["run", str(cfg), *make_args(tmp_path)], 2, fragment)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_config_file_problems(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("plugin: bm\nname: caf\xe9\n".encode("latin-1"))
    clean_failure(capsys, ["run", str(latin)], 2, "latin.yaml: not UTF-8 text")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    clean_failure(capsys, ["run", str(listed)], 2, "list.yaml: expected a mapping")
    clean_failure(capsys, ["run", str(tmp_path / "absent.yaml")], 2, "config file not found")


def test_unwritable_out_names_the_path(cfg, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    clean_failure(capsys, ["run", str(cfg), f"out={tmp_path / 'afile'}"], 2, str(tmp_path / "afile"))


def test_other_commands_reject_bad_arguments(tmp_path, capsys):
    clean_failure(capsys, ["plugins", "extra"], 2, "expected key=value, got 'extra' @ sbcore plugins")
    clean_failure(capsys, ["config"], 2, "give plugin=NAME")
    clean_failure(capsys, ["config", "plugin=nope"], 2, "unknown plugin 'nope'")
    clean_failure(capsys, ["config", "plugin=bm", "cfg.yaml"], 2, "config file not found: cfg.yaml")
    clean_failure(capsys, ["sample", f"run={tmp_path / 'none'}"], 2, "run folder not found")
    clean_failure(capsys, ["status", f"run={tmp_path / 'none'}"], 2, "folder not found")
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_debug_shows_the_traceback(cfg, tmp_path, capsys, monkeypatch):
    assert main(["--debug", "run", str(cfg), "train.device=cuda:99"]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("SBCORE_DEBUG", "1")
    assert main(["run", str(cfg), "train.device=cuda:99"]) == 2
    assert "DeviceError" in capsys.readouterr().err


def test_version_and_help_need_no_plugins(monkeypatch, capsys):
    monkeypatch.setattr(cli, "get_plugins", lambda: pytest.fail("plugins loaded"))
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("sbcore ")
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "direction=forward|backward" in " ".join(capsys.readouterr().out.split())


def test_missing_optional_dependency_names_the_extra(cfg, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    clean_failure(capsys, ["run", str(cfg), "log.tensorboard.enabled=true"], 2, "pip install 'sbcore[tensorboard]'")


def test_config_shows_every_component_parameter(capsys):
    assert main(["config", "plugin=bm"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["network"]["time_dim"] == inspect.signature(MLP).parameters["time_dim"].default
    assert {"layers", "hidden"} <= set(shown["network"]) and "dim" in shown["data"]["x0"]
    assert "steps" in shown["sampler"] and "sigma" in shown["process"]


# ---- run folders: resume, locks, pipes ---------------------------------------------------------------


@pytest.fixture
def finished(cfg, tmp_path):
    assert main(["run", str(cfg)]) == 0
    return tmp_path / "runs" / "tiny"


def test_resume_with_changed_width_is_refused_and_config_kept(finished, cfg, capsys):
    before = snapshot(finished)
    err = clean_failure(capsys, ["run", str(cfg), "resume=true", "network.hidden=32", "process.sigma=0.5"], 2,
                        "network.hidden: 16 -> 32", "process.sigma: 1.0 -> 0.5", "resume=force")
    assert "config.yaml" in err
    assert snapshot(finished) == before


def test_resume_with_changed_process_is_listed(finished, cfg, capsys):
    before = snapshot(finished)
    clean_failure(capsys, ["run", str(cfg), "resume=true", "process.sigma=0.5"], 2, "process.sigma: 1.0 -> 0.5")
    assert snapshot(finished) == before
    assert main(["run", str(cfg), "resume=force", "process.sigma=0.5", "train.steps=8"]) == 0
    assert yaml.safe_load((finished / "config.yaml").read_text())["process"]["sigma"] == 0.5


def test_resume_with_unloadable_weights_names_the_checkpoint(finished, cfg, capsys):
    clean_failure(capsys, ["run", str(cfg), "resume=force", "network.hidden=32", "train.steps=8"], 1,
                  "step_00000006.safetensors")


def test_locked_folder_refuses_a_second_process(finished, cfg, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (finished / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename, "since": "x"}))
        before = snapshot(finished)
        clean_failure(capsys, ["run", str(cfg), "resume=true", "train.steps=8"], 2, f"in use by process {holder.pid}")
        assert snapshot(finished) == before
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(cfg), "resume=true", "train.steps=8"]) == 0  # the holder is gone: a stale lock
    assert not (finished / ".lock").exists()


def test_run_folder_with_pipe_url_says_so_before_sampling(finished, capsys, monkeypatch):
    raw = yaml.safe_load((finished / "config.yaml").read_text())
    raw["data"]["x1"] = {"source": "shards", "urls": "pipe:touch /tmp/sbcore-pwned", "allow_pipe": True}
    (finished / "config.yaml").write_text(yaml.safe_dump(raw))
    clean_failure(capsys, ["sample", f"run={finished}", "n=4"], 2, "pipe:touch", "SBCORE_ALLOW_PIPE=1")
    clean_failure(capsys, ["eval", f"run={finished}", "n=4"], 2, "pipe:touch")
    assert not Path("/tmp/sbcore-pwned").exists()


def test_damaged_checkpoint_is_named_by_sample(finished, tmp_path, capsys):
    found = ckpt.list_checkpoints(finished / "checkpoints")
    found[-1].write_bytes(found[-1].read_bytes()[:-8])
    assert main(["sample", f"run={finished}", "n=4", f"out={tmp_path / 's.npz'}"]) == 0
    assert "step_00000006.safetensors" in capsys.readouterr().err and (tmp_path / "s.npz").is_file()
    for path in found:
        path.write_bytes(b"garbage")
    clean_failure(capsys, ["sample", f"run={finished}", "n=4"], 1, "step_00000006.safetensors")


# ---- training faults ---------------------------------------------------------------------------------


def test_nan_loss_stops_and_keeps_the_newest_finite_checkpoint(cfg, tmp_path, capsys):
    args = ["run", str(cfg), "train.lr=1e8", "train.grad_clip=null", "train.steps=40", "train.checkpoint_every=1",
            "train.keep_checkpoints=1", "train.log_every=1"]
    err = clean_failure(capsys, args, 1, "not finite", "newest checkpoint")
    bad_step = int(err.split("step ")[1].split(":")[0])
    kept = ckpt.list_checkpoints(tmp_path / "runs" / "tiny" / "checkpoints")
    assert [p.name for p in kept] == [f"step_{bad_step - 1:08d}.safetensors"]
    assert ckpt.is_readable(kept[0])
    assert all(torch.isfinite(t).all() for t in load_file(str(kept[0])).values())
    lines = (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) is not None for line in lines)  # strict JSON, no bare NaN


def test_nan_loss_skipped_when_configured(cfg, capsys):
    assert main(["run", str(cfg), "train.lr=1e8", "train.grad_clip=null", "train.steps=30",
                 "train.nonfinite=skip", "train.checkpoint_every=0"]) == 0


class _Failing:
    """A logger whose step hook raises."""

    calls = 0

    @hookimpl
    def sbcore_step_end(self, step):
        type(self).calls += 1
        raise RuntimeError("disk on fire")


def test_failing_hook_is_disabled_and_training_goes_on(cfg, tmp_path, capsys, monkeypatch):
    failing = create_plugins(extra=[_Failing()])
    monkeypatch.setattr(cli, "get_plugins", lambda: failing)
    assert main(["run", str(cfg)]) == 0
    assert "plugin '_Failing': sbcore_step_end raised RuntimeError: disk on fire" in capsys.readouterr().err
    assert _Failing.calls == 1 and ckpt.list_checkpoints(tmp_path / "runs" / "tiny" / "checkpoints")
    clean_failure(capsys, ["run", str(cfg), "name=strict", "log.strict=true"], 1, "log.strict=true")


class _InterruptAt:
    """Sends SIGINT to this process when step `at` is logged (a Ctrl-C)."""

    def __init__(self, at: int) -> None:
        self.at = at

    @hookimpl
    def sbcore_step_end(self, step):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_sigint_checkpoints_and_resume_matches_an_uninterrupted_run(cfg, tmp_path, capsys, monkeypatch):
    interrupting = create_plugins(extra=[_InterruptAt(4)])
    monkeypatch.setattr(cli, "get_plugins", lambda: interrupting)
    args = ["run", str(cfg), "train.checkpoint_every=0", "train.steps=10", "train.log_every=1"]
    clean_failure(capsys, [*args, "name=cut"], 130, "stopped by SIGINT at step 5", "resume=true")
    monkeypatch.setattr(cli, "get_plugins", create_plugins)
    assert main([*args, "name=cut", "resume=true"]) == 0
    assert main([*args, "name=straight"]) == 0
    runs = tmp_path / "runs"
    a, b = (load_file(str(ckpt.list_checkpoints(runs / n / "checkpoints")[-1])) for n in ("straight", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_metrics(runs / "cut" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 11))


class _Unregistered(torch.nn.Module):
    pass


def test_unregistered_network_is_found_at_setup(cfg, tmp_path, capsys, monkeypatch):
    from sbcore.train.bridge_matching import BridgeMatching

    class Sneaky(BridgeMatching):
        def setup(self):
            super().setup()
            self.networks["sneaky"] = _Unregistered()

    class Plugin:
        @hookimpl
        def sbcore_register(self, registry):
            registry.add("method", "sneaky", Sneaky)

    sneaky = create_plugins(extra=[Plugin()])
    monkeypatch.setattr(cli, "get_plugins", lambda: sneaky)
    clean_failure(capsys, ["run", str(cfg), "plugin=sneaky"], 2, "_Unregistered is not registered")
    assert not (tmp_path / "runs").exists()


def test_kill_9_then_resume_keeps_metrics_monotonic(cfg, tmp_path):
    env = {**os.environ, "SBCORE_PLUGINS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "sbcore", "run", str(cfg), "train.steps=1000000",
                             "train.log_every=1", "train.checkpoint_every=3"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folder = tmp_path / "runs" / "tiny"
    deadline = time.monotonic() + 180
    while len(ckpt.list_checkpoints(folder / "checkpoints")) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    time.sleep(0.2)
    proc.kill()
    proc.wait()
    for name in ("metrics.jsonl", "events.jsonl"):
        with open(folder / name, "a") as f:
            f.write('{"step": 99999, "loss": 0.')  # a write cut short by the kill
    with pytest.warns(UserWarning, match="a write cut short"):
        assert main(["status", f"run={folder}"]) == 0 and main(["export", f"run={folder}"]) == 0
    with pytest.warns(UserWarning, match="line .* is not a JSON object"):
        read_metrics(folder / "metrics.jsonl")
    last = ckpt.list_checkpoints(folder / "checkpoints")[-1]
    resumed_at = ckpt.read_metadata(last)["step"]
    with pytest.warns(UserWarning, match="a write cut short"):  # the resume drops the torn line
        assert main(["run", str(cfg), "resume=true", f"train.steps={resumed_at + 4}", "train.log_every=1",
                     "train.checkpoint_every=3"]) == 0
    steps = [r["step"] for r in read_metrics(folder / "metrics.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == resumed_at + 4
    assert all(ckpt.is_readable(p) for p in ckpt.list_checkpoints(folder / "checkpoints"))


# ---- metrics.jsonl -----------------------------------------------------------------------------------


def test_metrics_lines_are_strict_json_and_truncate_on_resume(tmp_path):
    from sbcore.log.plugin import _append

    log = types.SimpleNamespace(jsonl=True)
    run = types.SimpleNamespace(is_main=True, dir=tmp_path, config=types.SimpleNamespace(log=log))
    for step in (1, 2, 3):
        _append(run, {"step": step, "loss": float("nan")})
    _append(run, {"summary": {"w2": float("inf"), "nested": [float("-inf")]}})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1], parse_constant=pytest.fail) == {"summary": {"w2": "inf", "nested": ["-inf"]}}
    truncate_metrics(tmp_path / "metrics.jsonl", 2)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


# ---- plugins -----------------------------------------------------------------------------------------

GOOD = '''
import torch
from sbcore import hookimpl
from sbcore.data.base import Source

class Ring(Source):
    def __init__(self, radius: float = 1.0) -> None:
        self.radius, self.shape = radius, (2,)
    def sample(self, n, generator):
        a = torch.rand(n, generator=generator) * 6.2832
        return self.radius * torch.stack([a.cos(), a.sin()], 1)

@hookimpl
def sbcore_register(registry):
    registry.add("dataset", "ring", Ring)
'''
BROKEN = {
    "bad_import": "import this_module_does_not_exist\n",
    "bad_register": "from sbcore import hookimpl\n@hookimpl\ndef sbcore_register(registry):\n"
                    "    registry.add('dataset', 'half', object)\n    raise RuntimeError('boom')\n",
    "bad_hook": "from sbcore import hookimpl\n@hookimpl\ndef sbcore_regster(registry):\n    pass\n",
    "clash": "from sbcore import hookimpl\n@hookimpl\ndef sbcore_register(registry):\n"
             "    registry.add('network', 'mlp', object)\n",
}


def test_broken_plugins_beside_a_good_one(tmp_path, cfg, capsys, monkeypatch):
    for name, text in {"good_plugin": GOOD, **BROKEN}.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))

    def entry(name, module, dist):
        return types.SimpleNamespace(name=name, dist=types.SimpleNamespace(name=dist, version="1.0"),
                                     load=lambda: __import__(module))

    points = [entry("good", "good_plugin", "sb-good"), entry("good", "clash", "sb-good-fork"),
              *(entry(name, name, f"sb-{name}") for name in BROKEN)]
    monkeypatch.setattr(plugins_module.md, "entry_points", lambda group: points)
    loaded = create_plugins()
    failed = loaded.failed()
    assert set(failed) == {"good (sb-good-fork)", *BROKEN}
    assert "No module named 'this_module_does_not_exist'" in failed["bad_import"]
    assert "boom" in failed["bad_register"] and "half" not in loaded.registry.names("dataset")
    assert "did you mean 'sbcore_register'" in failed["bad_hook"]
    assert "network 'mlp' is registered twice" in failed["clash"]
    monkeypatch.setattr(cli, "get_plugins", lambda: loaded)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.count("FAILED TO LOAD") == 5 and "good (sb-good 1.0)\n" in out and "dataset: ring" in out
    assert main(["run", str(cfg), "data.x1={source: ring, radius: 2.0}"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: plugin bad_import failed to load") == 1
