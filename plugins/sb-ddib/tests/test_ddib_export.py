"""`sbcore export format=diffusers` of a ddib run on diffusers_unet: diffusers loads it back (the same UNet
outputs, the run's schedule) and `sbcore translate` takes it as a domain."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from sbcore.cli import main
from sbcore.io import checkpoint as ckpt
from sbcore.plugins import get_plugins
from sbcore.process import VPDiffusion
from sbcore.testing.diffusers import TINY_UNET

diffusers = pytest.importorskip("diffusers", reason="diffusers is in the test extra")
torch.set_num_threads(1)


def ddib_run(tmp_path, name="blobs", **method):
    """A 4-step ddib run on 64 smooth 8x8 images in [-1, 1] with a tiny diffusers_unet."""
    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.interpolate(torch.rand(64, 1, 2, 2, generator=g), size=8, mode="bilinear") * 2 - 1
    np.save(tmp_path / "blobs.npy", images.numpy())
    raw = {
        "plugin": "ddib", "name": name, "out": str(tmp_path / "runs"), "seed": 0,
        "data": {"x0": {"source": "arrays", "path": str(tmp_path / "blobs.npy")}},
        "process": {"kind": "vp", "steps": 100, "beta_max": 10.0},
        "method": {"eps_skip": False, **method},
        "network": {"kind": "diffusers_unet", **TINY_UNET, "timesteps": 100},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "eval_every": 4, "eval_samples": 8, "progress": False,
                  "threads": 1},
        "sampler": {"kind": "ddim", "steps": 4, "grid": "respaced"},
        "log": {"console": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 0
    return tmp_path / "runs" / name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return ddib_run(tmp_path_factory.mktemp("export"), predict="v")


def test_export_loads_back_in_diffusers(run_dir, tmp_path, capsys):
    out = tmp_path / "pipe"
    assert main(["export", f"run={run_dir}", "format=diffusers", f"out={out}"]) == 0
    assert "DDPMPipeline.from_pretrained" in capsys.readouterr().out
    pipeline = diffusers.DDPMPipeline.from_pretrained(out)
    scheduler = pipeline.scheduler
    assert scheduler.config.num_train_timesteps == 100 and scheduler.config.prediction_type == "v_prediction"
    process = VPDiffusion(beta_max=10.0, steps=100)
    assert torch.allclose(scheduler.betas.double(), process.discrete_betas(), rtol=1e-6)
    # the exported UNet at DDPM timestep i is the run's EMA network at t = i / 99
    net = ckpt.load_networks(ckpt.list_checkpoints(run_dir / "checkpoints")[-1], get_plugins().registry)["eps"]
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([0, 40, 99])
    with torch.no_grad():
        assert torch.allclose(pipeline.unet(x, index).sample, net(x, index / 99), rtol=0, atol=1e-6)
        images = pipeline(batch_size=2, num_inference_steps=5, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers")
    assert "source: arrays" in card and "| loss |" in card and "eval/" in card and "plugin: ddib" in card


def test_export_is_a_translate_domain(run_dir, tmp_path, capsys):
    out = tmp_path / "pipe"
    assert main(["export", f"run={run_dir}", "format=diffusers", f"out={out}"]) == 0
    assert main(["translate", f"source={run_dir}", f"target={out}", "n=8", "steps=4", f"out={tmp_path / 'tr'}",
                 "device=cpu"]) == 0
    record = json.loads((tmp_path / "tr" / "translation.json").read_text())
    assert record["differences"][0].startswith("data.x0")  # the export's data is its own samples
    # the run and its export are one model: translating into the export is translating into the run itself
    assert main(["translate", f"source={run_dir}", f"target={run_dir}", "n=8", "steps=4", f"out={tmp_path / 'same'}",
                 "device=cpu"]) == 0
    exported, itself = (np.load(tmp_path / name / "translation.npz") for name in ("tr", "same"))
    assert np.array_equal(exported["source"], itself["source"])
    assert np.allclose(exported["target"], itself["target"], rtol=0, atol=1e-5)
    assert np.allclose(exported["cycle"], itself["cycle"], rtol=0, atol=1e-4)


def test_unsupported_runs_are_refused_and_nothing_is_written(tmp_path, capsys):
    run = ddib_run(tmp_path, "skip")
    raw = yaml.safe_load((run / "config.yaml").read_text())
    assert raw["method"]["predict"] == "eps"
    out = tmp_path / "pipe"
    raw["method"]["eps_skip"] = True  # a skip diffusers cannot add
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    assert main(["export", f"run={run}", "format=diffusers", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "format=diffusers exports runs on process: vp" in err and "eps_skip: true" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".pipe")]
    assert main(["export", f"run={run}", "format=diffusers"]) == 2
    assert "format=diffusers needs out=DIR" in capsys.readouterr().err
