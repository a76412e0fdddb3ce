"""A pip user's first hour, from the wheels: build ``sbcore`` and ``sb-i2sb``, install them into a fresh
virtual environment outside the repository (reusing the installed torch and other dependencies), and
from an empty folder list the examples, copy one, train it a few steps on the offline MNIST, then from
another folder translate inputs with ``input=`` (the run folder alone, no data) and write its report.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = "i2sb-mnist-sr4x-pool"


def dependency_layer(target: Path) -> Path:
    """A folder of links to this environment's installed packages, sbcore and its plugins left out (their
    editable installs and metadata would shadow the wheels); a .pth file of the new venv points at it."""
    target.mkdir()
    ours = ("sbcore", "sb_", "sb-", "__editable__", "_sbcore")
    for source in {Path(p) for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]}:
        for entry in source.iterdir():
            if entry.name.startswith(ours) or entry.suffix == ".pth" or (target / entry.name).exists():
                continue
            (target / entry.name).symlink_to(entry)
    return target


def sbcore(venv: Path, cwd: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(venv / "bin" / "sbcore"), *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    shown = f"sbcore {' '.join(args)} (in {cwd}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, shown
    return result.stdout


@pytest.mark.slow
def test_from_the_wheels_in_empty_folders(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(ROOT), str(ROOT / "plugins" / "sb-i2sb")],
                   check=True, capture_output=True, cwd=tmp_path)
    built = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert built == ["sb_i2sb", "sbcore"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "_dependencies.pth").write_text(f"{dependency_layer(tmp_path / 'deps')}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SBCORE_PLUGINS", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True, env=env)
    where = subprocess.run([str(python), "-c", "import sbcore, sb_i2sb; print(sbcore.__file__, sb_i2sb.__file__)"],
                           capture_output=True, text=True, check=True, env=env, cwd=tmp_path).stdout
    assert str(ROOT) not in where and all(str(purelib) in p for p in where.split())

    first = tmp_path / "first"
    first.mkdir()
    train_env = {**env, "SBCORE_DATA_DIR": os.environ["SBCORE_DATA_DIR"]}
    listing = sbcore(venv, first, train_env, "examples", "plugin=i2sb")
    assert "mnist-sr4x-pool.yaml" in listing
    sbcore(venv, first, train_env, "examples", "plugin=i2sb", "copy=mnist-sr4x-pool")
    sbcore(venv, first, train_env, "run", "mnist-sr4x-pool.yaml", "train.steps=3", "train.batch_size=4",
           "train.eval_samples=8", "train.threads=1", "train.progress=false")
    run = first / "runs" / RUN
    assert (run / "config.yaml").is_file() and list((run / "checkpoints").glob("step_*.safetensors"))

    second = tmp_path / "second"  # another folder, no data: the run folder is all sample needs
    second.mkdir()
    with np.load(Path(os.environ["SBCORE_DATA_DIR"]) / "mnist.npz") as data:
        digits = np.pad(data["x_test"][:4], ((0, 0), (2, 2), (2, 2)))[:, None]  # (4, 1, 32, 32) uint8 pixels
    np.savez(second / "inputs.npz", x=digits)
    sbcore(venv, second, env, "sample", f"run={run}", "input=inputs.npz", "out=restored.npz")
    with np.load(second / "restored.npz") as restored:
        assert restored["x0"].shape == (4, 1, 32, 32) and np.isfinite(restored["x0"]).all()
    sbcore(venv, second, env, "report", f"run={run}")
    assert (run / "report" / "index.html").is_file()
