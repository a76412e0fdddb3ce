"""The `arrays` source: user .npz / .npy / .pt / .safetensors files, unpaired or paired."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sbcore.data.arrays import ArraysSource


@pytest.fixture
def points() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)


def test_npz_single_array_and_key(tmp_path, points):
    np.savez(tmp_path / "one.npz", data=points)
    source = ArraysSource(path=str(tmp_path / "one.npz"))
    assert source.shape == (3,) and len(source) == 100 and source.key == "data"
    lo, hi = source.value_range
    assert lo == pytest.approx(points.min()) and hi == pytest.approx(points.max())
    np.savez(tmp_path / "two.npz", a=points, b=2 * points, y=np.arange(100) % 4)
    with pytest.raises(ValueError, match=r"holds the arrays \['a', 'b', 'y'\]; choose one with key"):
        ArraysSource(path=str(tmp_path / "two.npz"))
    b = ArraysSource(path=str(tmp_path / "two.npz"), key="b", labels="y")
    assert torch.equal(b.data, torch.from_numpy(2 * points)) and b.labels.tolist()[:5] == [0, 1, 2, 3, 0]


def test_pt_safetensors_and_npy_read_the_same(tmp_path, points):
    t = torch.from_numpy(points)
    torch.save({"x": t}, tmp_path / "d.pt")
    torch.save(t, tmp_path / "bare.pt")
    save_file({"x": t}, tmp_path / "d.safetensors")
    np.save(tmp_path / "d.npy", points.astype(np.float64))
    for name in ("d.pt", "bare.pt", "d.safetensors", "d.npy"):
        source = ArraysSource(path=str(tmp_path / name))
        assert source.data.dtype == torch.float32 and torch.equal(source.data, t), name


def test_pt_is_loaded_without_running_code(tmp_path):
    torch.save({"x": torch.zeros(3, 2), "extra": {"not": object()}}, tmp_path / "evil.pt")
    refused = r"evil\.pt: cannot be read as \.pt: refused.*GLOBAL object was not an allowed global by default\); "
    with pytest.raises(ValueError, match=refused):
        ArraysSource(path=str(tmp_path / "evil.pt"))
    (tmp_path / "cut.pt").write_bytes((tmp_path / "evil.pt").read_bytes()[:40])  # a damaged file: one line too
    with pytest.raises(ValueError, match=r"cut\.pt: cannot be read as \.pt: [^\n]+$"):
        ArraysSource(path=str(tmp_path / "cut.pt"))


def test_paired_file_draws_aligned_rows(tmp_path, points):
    np.savez(tmp_path / "pairs.npz", x0=points, x1=points + 100.0)
    source = ArraysSource(path=str(tmp_path / "pairs.npz"))
    assert source.paired
    x0, x1 = source.sample_pairs(64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x1 - x0, torch.full_like(x0, 100.0))
    with pytest.raises(ValueError, match="this data is paired"):
        source.sample(4, torch.Generator())
    one_side = ArraysSource(path=str(tmp_path / "pairs.npz"), side="x1")
    assert not one_side.paired and one_side.data.min() > 90
    np.savez(tmp_path / "bad_pairs.npz", x0=points, x1=points[:50])
    with pytest.raises(ValueError, match=r"bad_pairs\.npz: paired arrays must have the same shape"):
        ArraysSource(path=str(tmp_path / "bad_pairs.npz"))


def test_validation_names_the_file(tmp_path, points):
    nan = points.copy()
    nan[[3, 7], 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=nan)
    with pytest.raises(ValueError, match=r"nan\.npz\[x\]: data has NaN or infinite values in 2 of 100 samples"):
        ArraysSource(path=str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match=r"empty\.npz\[x\]: data is empty"):
        ArraysSource(path=str(tmp_path / "empty.npz"))
    np.savez(tmp_path / "nothing.npz")
    with pytest.raises(ValueError, match=r"nothing\.npz: holds no arrays"):
        ArraysSource(path=str(tmp_path / "nothing.npz"))
    np.savez(tmp_path / "flat.npz", x=np.arange(5.0))
    with pytest.raises(ValueError, match=r"flat\.npz\[x\]: data must have shape \(N, \.\.\.\)"):
        ArraysSource(path=str(tmp_path / "flat.npz"))
    np.savez(tmp_path / "ok.npz", x=points)
    with pytest.raises(ValueError, match=r"ok\.npz: array 'x' has samples of shape \(3,\), expected \(2,\)"):
        ArraysSource(path=str(tmp_path / "ok.npz"), expect_shape=(2,))
    with pytest.raises(ValueError, match=r"ok\.npz\[x\]: values span .* outside the declared value_range \[-1, 1\]"):
        ArraysSource(path=str(tmp_path / "ok.npz"), value_range=(-1.0, 1.0))
    with pytest.raises(FileNotFoundError, match=r"missing\.npz: file not found"):
        ArraysSource(path=str(tmp_path / "missing.npz"))
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\.csv'"):
        ArraysSource(path=str(tmp_path / "x.csv"))


def test_determinism_and_config(tmp_path, points, plugins, tiny_gaussian):
    from sbcore.config import structure_config
    from sbcore.launch.local import run_local

    np.savez(tmp_path / "a.npz", x=points[:, :2] - 1)
    np.savez(tmp_path / "b.npz", x=points[:, :2] + 1)
    source = ArraysSource(path=str(tmp_path / "a.npz"))
    assert torch.equal(source.sample(10, torch.Generator().manual_seed(2)),
                       source.sample(10, torch.Generator().manual_seed(2)))
    raw = dict(tiny_gaussian, data={"x0": {"source": "arrays", "path": str(tmp_path / "a.npz")},
                                    "x1": {"source": "arrays", "path": str(tmp_path / "b.npz")}})
    raw["train"] = dict(raw["train"], steps=3, checkpoint_every=0)
    summary = run_local(structure_config(raw, plugins.registry), None, plugins)
    assert summary["step"] == 3 and np.isfinite(summary["forward/mean_error"])
