"""`sbcore sample input=...`: the user's own arrays or image folders translated by an MNIST-shaped run,
the before/after grid, clear one-line errors, and plugin sample options."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from PIL import Image

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.hookspecs import hookimpl
from sbcore.launch.local import run_local
from sbcore.train.bridge_matching import BridgeMatching

SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def mnist_shaped_run(plugins, tmp_path_factory):
    """bm with a small MLP on two unpaired sets of 1x28x28 arrays, 3 steps."""
    tmp = tmp_path_factory.mktemp("mnist_shaped")
    rng = np.random.default_rng(0)
    for side in ("x0", "x1"):
        np.save(tmp / f"{side}.npy", rng.uniform(-1, 1, size=(16, *SHAPE)).astype(np.float32))
    raw = {
        "plugin": "bm", "name": "digits", "out": str(tmp / "runs"), "seed": 0,
        "data": {side: {"source": "arrays", "path": str(tmp / f"{side}.npy")} for side in ("x0", "x1")},
        "network": {"kind": "mlp", "hidden": 16, "layers": 1},
        "train": {"steps": 3, "batch_size": 8, "log_every": 3, "eval_samples": 8, "progress": False,
                  "checkpoint_every": 0, "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 2},
        "log": {"console": False},
    }
    config = structure_config(raw, plugins.registry)
    run_local(config, None, plugins)
    return tmp / "runs" / "digits"


def test_array_file_is_translated_and_gridded(mnist_shaped_run, tmp_path, capsys):
    inputs = np.random.default_rng(1).uniform(-1, 1, size=(5, *SHAPE)).astype(np.float32)
    np.savez(tmp_path / "some.npz", images=inputs)
    out = tmp_path / "o.npz"
    assert main(["sample", f"run={mnist_shaped_run}", f"input={tmp_path / 'some.npz'}", f"out={out}"]) == 0
    arrays = np.load(out)
    np.testing.assert_array_equal(arrays["x0"], inputs)
    assert arrays["x1"].shape == (5, *SHAPE) and int(arrays["nfe"]) == 2
    assert not np.allclose(arrays["x1"], inputs)
    grid = Image.open(tmp_path / "o_grid.png")
    assert grid.size == (2 + 5 * 30, 2 + 2 * 30)  # one row of 5 inputs above their 5 outputs
    assert "o_grid.png" in capsys.readouterr().out
    # backward, fewer steps, one sample given without a batch axis, uint8 pixels read as [-1, 1]
    np.save(tmp_path / "one.npy", np.full(SHAPE, 255, dtype=np.uint8))
    assert main(["sample", f"run={mnist_shaped_run}", f"input={tmp_path / 'one.npy'}", f"out={out}",
                 "direction=backward", "steps=1"]) == 0
    arrays = np.load(out)
    np.testing.assert_array_equal(arrays["x1"], np.ones((1, *SHAPE), np.float32))
    assert arrays["x0"].shape == (1, *SHAPE) and int(arrays["nfe"]) == 1


def test_grayscale_and_channels_last_arrays_are_read_as_samples(mnist_shaped_run, tmp_path):
    """MNIST's own (N, 28, 28) uint8 arrays and channels-last (N, 28, 28, 1) ones need no reshaping first."""
    pixels = np.random.default_rng(2).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    expected = pixels[:, None].astype(np.float32) / 127.5 - 1
    for name, array in (("gray.npy", pixels), ("last.npy", pixels[..., None])):
        np.save(tmp_path / name, array)
        out = tmp_path / f"{name}.npz"
        assert main(["sample", f"run={mnist_shaped_run}", f"input={tmp_path / name}", f"out={out}"]) == 0
        np.testing.assert_allclose(np.load(out)["x0"], expected, atol=1e-6)


def test_image_folder_is_converted_like_the_run_data(mnist_shaped_run, tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.new("RGB", (40, 30), (255, 255, 255)).save(folder / "b_white.png")
    Image.new("RGB", (28, 28), (0, 0, 0)).save(folder / "a_black.png")
    Image.new("L", (50, 50), 128).save(folder / "c_grey.jpg")
    out = tmp_path / "folder.npz"
    assert main(["sample", f"run={mnist_shaped_run}", f"input={folder}", f"out={out}"]) == 0
    arrays = np.load(out)
    assert arrays["names"].tolist() == ["a_black.png", "b_white.png", "c_grey.jpg"]
    x = arrays["x0"]
    assert x.shape == (3, *SHAPE) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], -1.0)
    np.testing.assert_allclose(x[1], 1.0)
    np.testing.assert_allclose(x[2], 128 / 127.5 - 1, atol=1e-6)
    assert (tmp_path / "folder_grid.png").is_file()


def test_wrong_shape_is_one_clear_line(mnist_shaped_run, tmp_path, capsys):
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 3, 32, 32), np.float32))
    assert main(["sample", f"run={mnist_shaped_run}", f"input={tmp_path / 'rgb.npz'}"]) == 2
    err = capsys.readouterr().err
    line = (f"sbcore: input={tmp_path / 'rgb.npz'}: expected samples of shape (1, 28, 28) (the run's data), "
            "given (3, 32, 32) (array of shape (4, 3, 32, 32))")
    assert line in err.splitlines() and "Traceback" not in err  # the whole message is one line
    np.savez(tmp_path / "two.npz", a=np.zeros((1, *SHAPE)), b=np.zeros((1, *SHAPE)))
    assert main(["sample", f"run={mnist_shaped_run}", f"input={tmp_path / 'two.npz'}"]) == 2
    assert "holds the arrays ['a', 'b']; choose one with key=NAME" in capsys.readouterr().err
    assert main(["sample", f"run={mnist_shaped_run}", f"input={tmp_path / 'two.npz'}", "key=b",
                 f"out={tmp_path / 'b.npz'}"]) == 0


class ResolutionOption:
    """A plugin with a sample option of its own for `bm` runs."""

    @hookimpl
    def sbcore_sample_options(self, run):
        return {"resolution": (int, "output grid size")} if run.config.plugin == "bm" else None


def test_plugin_sample_options_are_parsed_passed_and_unknown_ones_rejected(
        mnist_shaped_run, tmp_path, plugins, monkeypatch, capsys):
    np.save(tmp_path / "in.npy", np.zeros((2, *SHAPE), np.float32))
    given = [f"run={mnist_shaped_run}", f"input={tmp_path / 'in.npy'}", f"out={tmp_path / 'o.npz'}"]
    assert main(["sample", *given, "resolution=64"]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'resolution' (did you mean 'direction'?) @ sbcore sample" in err
    seen: list[int] = []
    original = BridgeMatching.sample

    def sample(self, direction, x_start, resolution: int, **kwargs):
        seen.append(resolution)
        traj = original(self, direction, x_start, **kwargs)
        return attrs.evolve(traj, x=traj.x.repeat_interleave(2, -1).repeat_interleave(2, -2))  # "at 56x56"

    monkeypatch.setattr(BridgeMatching, "sample", sample)
    monkeypatch.setattr("sbcore.sample.get_plugins", lambda: plugins)
    plugins.pm.register(ResolutionOption(), name="resolution")
    try:
        assert main(["sample", *given, "resolution=56"]) == 0
        assert seen == [56] and np.load(tmp_path / "o.npz")["x1"].shape == (2, 1, 56, 56)
        assert Image.open(tmp_path / "o_grid.png").size == (2 + 2 * 58, 2 + 2 * 58)  # inputs shown at 56x56
        assert main(["sample", *given, "resolution=big"]) == 2
        assert "expected an integer or none, got 'big' @ sbcore sample resolution" in capsys.readouterr().err
        assert main(["sample", *given, "resolutoin=64"]) == 2
        assert "unknown option 'resolutoin' (did you mean 'resolution'?) @ sbcore sample" in capsys.readouterr().err
    finally:
        plugins.pm.unregister(name="resolution")
