"""Run folders: every check passes before config.yaml, metrics.jsonl or checkpoints/ of an existing run
change; a run never writes outside `out`; a full disk or a signal loses nothing that was saved."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

import pytest

from sbcore import cli, hookimpl
from sbcore.cli import main
from sbcore.config_text import merge
from sbcore.io import checkpoint as ckpt
from sbcore.plugins import create_plugins
from sbcore.testing import cli_failure, run_cli, snapshot, tiny_run_config, write_tiny_config

TINY = tiny_run_config(train={"steps": 6, "checkpoint_every": 2})


@pytest.fixture
def cfg(tmp_path):
    return write_tiny_config(tmp_path, **TINY)


@pytest.fixture
def finished(cfg, tmp_path):
    assert main(["run", str(cfg)]) == 0
    return tmp_path / "runs" / "tiny"


def _outside(tmp_path: Path) -> dict[str, bytes]:
    """Every file under tmp_path but outside runs/ (what a run must never write)."""
    return {k: v for k, v in (snapshot(tmp_path) or {}).items() if not k.startswith("runs")}


# ---- a refused resume changes nothing ------------------------------------------------------------------


def test_resume_whose_weights_do_not_fit_keeps_the_folder_and_sampling_works(finished, cfg, tmp_path):
    before = snapshot(finished)
    cli_failure(["run", str(cfg), "resume=force", "network.hidden=32", "train.steps=8"], 1,
                "step_00000006.safetensors", "do not fit")
    assert snapshot(finished) == before
    assert main(["sample", f"run={finished}", "n=4", f"out={tmp_path / 's.npz'}"]) == 0
    assert main(["run", str(cfg), "resume=true", "train.steps=8"]) == 0


@pytest.mark.parametrize("broken", ["checkpoints", "metrics.jsonl", "config.yaml", "events.jsonl"])
def test_resume_where_a_part_changed_kind_is_refused_and_metrics_kept(finished, cfg, broken):
    part = finished / broken
    if part.is_dir():
        for child in part.iterdir():
            child.unlink()
        part.rmdir()
        part.write_text("now a file\n")
    else:
        part.unlink()
        part.mkdir()
    before, names = snapshot(finished), sorted(os.listdir(finished))
    cli_failure(["run", str(cfg), "resume=true", "train.steps=8"], 2, str(part))
    assert snapshot(finished) == before and sorted(os.listdir(finished)) == names


def test_resume_with_a_damaged_training_state_is_refused_before_writing(finished, cfg):
    for path in ckpt.list_checkpoints(finished / "checkpoints"):
        ckpt.state_path(path).write_bytes(b"garbage")
    before = snapshot(finished)
    cli_failure(["run", str(cfg), "resume=true", "train.steps=8"], 1, "no readable checkpoint")
    assert snapshot(finished) == before


@pytest.mark.parametrize("kind", ["torchrun", "submitit-local"])
def test_resume_through_a_launcher_checks_before_writing(finished, cfg, kind):
    if kind == "submitit-local":
        pytest.importorskip("submitit")
    before = snapshot(finished)
    cli_failure(["run", str(cfg), "resume=force", "network.hidden=32", f"launcher.kind={kind}"], 1, "do not fit")
    assert snapshot(finished) == before


@pytest.mark.parametrize("args", [["export", "out={run}/config.yaml/m.csv"], ["export", "format=xml"],
                                  ["report", "colour=red"], ["eval", "metrics=[nope"], ["sample", "n=0"],
                                  ["status", "run2=x"]])
def test_refused_commands_on_a_run_folder_change_nothing(finished, args):
    before = snapshot(finished)
    code, _, err = run_cli([args[0], f"run={finished}", *(a.format(run=finished) for a in args[1:])])
    assert code == 2 and "Traceback" not in err, err
    assert snapshot(finished) == before


# ---- paths stay inside out ------------------------------------------------------------------------------


def test_name_through_a_symlink_out_of_out_is_refused(cfg, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "link").symlink_to(elsewhere)
    before = _outside(tmp_path)
    cli_failure(["run", str(cfg), "name=link/run"], 2, "outside out=")
    assert list(elsewhere.iterdir()) == [] and _outside(tmp_path) == before


def test_run_folder_that_is_a_symlink_out_of_out_is_not_resumed(finished, cfg, tmp_path):
    moved = tmp_path / "moved"
    finished.rename(moved)
    finished.symlink_to(moved)
    before = snapshot(moved)
    cli_failure(["run", str(cfg), "resume=true", "train.steps=8"], 2, "outside out=")
    assert snapshot(moved) == before


def test_symlink_inside_out_is_fine(cfg, tmp_path):
    (tmp_path / "runs" / "real").mkdir(parents=True)
    (tmp_path / "runs" / "alias").symlink_to(tmp_path / "runs" / "real")
    assert main(["run", str(cfg), "name=alias/x"]) == 0
    assert (tmp_path / "runs" / "real" / "x" / "config.yaml").is_file()


# ---- two runs on one name -------------------------------------------------------------------------------


def test_two_runs_started_together_on_one_name_get_two_folders(cfg, tmp_path, monkeypatch, capsys):
    from sbcore.train.bridge_matching import BridgeMatching

    class Racing(BridgeMatching):
        def setup(self):  # the other run creates the folder while this one checks its data
            super().setup()
            (tmp_path / "runs" / "tiny").mkdir(parents=True, exist_ok=True)

    plugins = create_plugins()
    plugins.registry.add("method", "racing", Racing)
    monkeypatch.setattr(cli, "get_plugins", lambda: plugins)
    assert main(["run", str(cfg), "plugin=racing", "log.console=true"]) == 0
    assert "runs/tiny-1" in capsys.readouterr().out
    assert (tmp_path / "runs" / "tiny-1" / "config.yaml").is_file()
    assert os.listdir(tmp_path / "runs" / "tiny") == []


# ---- launchers ------------------------------------------------------------------------------------------


def test_slurm_without_slurm_is_refused_before_any_folder(cfg, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    cli_failure(["run", str(cfg), "launcher.kind=slurm"], 2, "no SLURM", "sbatch")
    assert not (tmp_path / "runs").exists()


# ---- a full disk while a checkpoint is written ----------------------------------------------------------


@pytest.mark.parametrize("failure", ["enospc", "safetensors"])
def test_full_disk_during_a_checkpoint_leaves_no_temp_file(cfg, tmp_path, monkeypatch, failure):
    from safetensors import SafetensorError

    real = ckpt.save_file
    calls = []

    def filling(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) <= 3:  # step 2 (state, weights) and step 4's state are written
            return real(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"\0" * 100)  # part of the file, then the disk is full
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(ckpt, "save_file", filling)
    cli_failure(["run", str(cfg)], 1, "step_00000004.safetensors")
    folder = tmp_path / "runs" / "tiny" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002.safetensors",
                                                         "step_00000002.state.safetensors"]
    assert ckpt.is_readable(folder / "step_00000002.safetensors")
    monkeypatch.setattr(ckpt, "save_file", real)
    assert main(["run", str(cfg), "resume=true"]) == 0


# ---- signals --------------------------------------------------------------------------------------------


class _HangUpAt:
    @hookimpl
    def sbcore_step_end(self, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGHUP)


def test_sighup_checkpoints_like_sigterm(cfg, tmp_path, monkeypatch):
    plugins = create_plugins(extra=[_HangUpAt()])
    monkeypatch.setattr(cli, "get_plugins", lambda: plugins)
    before = signal.getsignal(signal.SIGHUP)
    cli_failure(["run", str(cfg), "train.checkpoint_every=0", "train.steps=20"], 128 + signal.SIGHUP,
                "stopped by SIGHUP", "resume=true")
    assert signal.getsignal(signal.SIGHUP) is before
    found = ckpt.list_checkpoints(tmp_path / "runs" / "tiny" / "checkpoints")
    assert [p.name for p in found] == ["step_00000003.safetensors"]


# ---- status and export on damaged files -----------------------------------------------------------------


DAMAGE = {
    "events.jsonl": ['[1, 2]', '"text"', '{"no_event": 1}', '{"event": 3}', '{"event": "start", "step": [1]}',
                     '{"step": 1, "event": "x"'],
    "metrics.jsonl": ['[1]', '{"loss": 1.0}', '{"step": "7", "loss": 1}', '{"step": null}', '{"step": true}',
                      '{"step": 2.5}', '{"step": -1}', '{"step": 1, "loss": {"a": 1}}', '{"step": 1'],
    "launch.json": ['{"cluster": "slurm", "job_id"', '[]', '{"cluster": "local"}', '{"cluster": 1, "job_id": [],'
                    ' "kind": {}, "stdout": null}', 'null'],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run for the read-only commands' tests (copied by each)."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["run", *[f"{k}={v}" for k, v in _flat(merge(TINY, {"out": str(root)}))]]) == 0
    return root / "tiny"


def _flat(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    return [kv for k, v in tree.items()
            for kv in (_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)])]


@pytest.mark.parametrize(("name", "line"), [(n, line) for n, lines in DAMAGE.items() for line in lines])
def test_status_and_export_on_a_damaged_line(trained, tmp_path, name, line):
    finished = tmp_path / "tiny"
    shutil.copytree(trained, finished)
    path = finished / name
    if name == "launch.json":
        path.write_text(line)
    else:
        with path.open("a") as f:
            f.write(line + "\n")
    code, out, err = run_cli(["status", f"run={finished}"])
    assert code == 0 and "Traceback" not in err and "latest checkpoint" in out, err
    code, out, err = run_cli(["export", f"run={finished}", f"out={tmp_path / 'm.csv'}"])
    assert code == 0 and "Traceback" not in err, err
    assert (tmp_path / "m.csv").read_text().startswith("step,")
