"""Latent bridges (data.latent): both sides encoded once by a VAE (diffusers' AutoencoderKL as the oracle),
cached beside the runs, the bridge trained and sampled on codes, pictures and saved samples in pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from sbcore.cli import main
from sbcore.io import checkpoint as ckpt
from sbcore.io import plots
from sbcore.plugins import get_plugins
from sbcore.testing.diffusers import vae_folder

diffusers = pytest.importorskip("diffusers", reason="diffusers is in the test extra")
torch.set_num_threads(1)


def images(n, seed):
    """n smooth 16x16 one-channel pictures in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=16, mode="bilinear") * 2 - 1


def latent_run(tmp_path, name="latent", **extra):
    for side, seed in (("a", 0), ("b", 1)):
        np.save(tmp_path / f"{side}.npy", images(24, seed).numpy())
    vae = tmp_path / "vae"
    if not vae.exists():
        vae_folder(vae)
    raw = {
        "plugin": "bm", "name": name, "out": str(tmp_path / "runs"), "seed": 0,
        "data": {"x0": {"source": "arrays", "path": str(tmp_path / "a.npy")},
                 "x1": {"source": "arrays", "path": str(tmp_path / "b.npy")},
                 "latent": {"kind": "diffusers_vae", "pretrained": str(vae), "scale": 0.5}},
        "network": {"kind": "unet", "channels": 8, "channel_mults": [1, 2], "groups": 4},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "eval_every": 4, "eval_samples": 8, "progress": False,
                  "threads": 1},
        "sampler": {"kind": "euler_maruyama", "steps": 3},
        "log": {"console": False}, **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_latent_bridge_trains_samples_and_decodes(tmp_path):
    assert main(["run", str(latent_run(tmp_path))]) == 0
    run = tmp_path / "runs" / "latent"
    # both sides encoded once, cached beside the runs: scale * the posterior mean of diffusers' own encoder
    cached = sorted((tmp_path / "runs" / ".latents").glob("*.safetensors"))
    assert len(cached) == 2
    vae = diffusers.AutoencoderKL.from_pretrained(tmp_path / "vae", low_cpu_mem_usage=False).eval()
    with torch.no_grad():
        want = {side: vae.encode(torch.from_numpy(np.load(tmp_path / f"{side}.npy"))).latent_dist.mean * 0.5
                for side in ("a", "b")}
    codes = [load_file(str(f))["data"] for f in cached]
    for side in want.values():
        assert any(c.shape == side.shape and torch.allclose(c, side, atol=1e-5) for c in codes)
    # the networks live on the codes' shape (2 x 8 x 8), the pictures on the pixels' (16 x 16 tiles)
    networks = ckpt.load_networks(ckpt.list_checkpoints(run / "checkpoints")[-1], get_plugins().registry)
    assert {tuple(net.hparams["shape"]) for net in networks.values()} == {(2, 8, 8)}
    plots.image_grid(tmp_path / "pixels.png", images(8, 0))  # the grid of 8 pictures at the data's size
    with Image.open(tmp_path / "pixels.png") as picture:
        size = picture.size
    files = [f for kind in ("input", "output") for f in (run / "pictures").glob(f"*_{kind}.png")]
    assert len(files) == 4  # forward and backward
    for file in files:
        with Image.open(file) as picture:
            assert picture.size == size
    # sbcore sample decodes: pixels of the data's shape come out
    out = tmp_path / "samples.npz"
    assert main(["sample", f"run={run}", "n=5", f"out={out}"]) == 0
    saved = np.load(out)
    assert saved["x0"].shape == saved["x1"].shape == (5, 1, 16, 16)
    with torch.no_grad():  # the saved inputs are drawn codes decoded by the VAE
        decoded = vae.decode(want["a"] / 0.5).sample
    gaps = (torch.from_numpy(saved["x0"])[:, None] - decoded[None]).flatten(2).abs().amax(-1).amin(-1)
    assert float(gaps.max()) < 1e-4


def test_the_cache_is_read_by_the_next_run(tmp_path):
    assert main(["run", str(latent_run(tmp_path, "first"))]) == 0
    cached = {f: f.stat().st_mtime_ns for f in (tmp_path / "runs" / ".latents").glob("*.safetensors")}
    assert main(["run", str(latent_run(tmp_path, "second"))]) == 0
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "runs" / ".latents").glob("*.safetensors")} == cached


def test_latent_bridges_refuse_what_they_cannot_encode(tmp_path, capsys):
    path = latent_run(tmp_path, "gauss")
    raw = yaml.safe_load(path.read_text())
    raw["data"]["x0"] = {"source": "gaussian", "dim": 2}
    raw["data"]["x1"] = {"source": "gaussian", "dim": 2}
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 2
    assert "data.latent encodes a finite source held in memory" in capsys.readouterr().err
    raw = yaml.safe_load(latent_run(tmp_path, "rgb").read_text())
    np.save(tmp_path / "rgb.npy", np.zeros((4, 3, 16, 16), dtype=np.float32))
    raw["data"]["x0"]["path"] = raw["data"]["x1"]["path"] = str(tmp_path / "rgb.npy")
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 2
    assert "takes 1-channel images" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "gauss").exists() and not (tmp_path / "runs" / "rgb").exists()
