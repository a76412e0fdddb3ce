"""diffusers_unet: a UNet2DModel saved by diffusers loads with identical outputs and passes the network suite;
diffusers' own DDIMScheduler (eta 0) is the oracle for sbcore's ddim sampler on the same model."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from sbcore.errors import MissingDependencyError, UserError
from sbcore.network.base import build_network
from sbcore.network.diffusers_unet import SHAPE_KEYS, DiffusersUNet, architecture
from sbcore.plugins import get_plugins
from sbcore.process import VPDiffusion
from sbcore.sampler import Predictor
from sbcore.sampler.ddim import DDIM
from sbcore.testing import NetworkSuite
from sbcore.testing.diffusers import ddpm_folder, tiny_unet

diffusers = pytest.importorskip("diffusers", reason="diffusers is in the test extra")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny UNet2DModel and the folder its save_pretrained wrote."""
    folder = tmp_path_factory.mktemp("unet")
    unet = tiny_unet(channels=2, size=8, seed=1)
    unet.save_pretrained(folder)
    return unet, folder


def inputs(channels=2, size=8, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g), torch.tensor([0.0, 0.37, 1.0])[:n]


def test_a_saved_unet_loads_with_identical_outputs(saved):
    unet, folder = saved
    net = DiffusersUNet((2, 8, 8), pretrained=str(folder)).eval()
    x, t = inputs()
    with torch.no_grad():
        want = unet(x, t * 999).sample  # the time convention: t in [0, 1] is timestep t (N - 1), N = 1000
        assert torch.equal(net(x, t), want)
        scalar = torch.tensor(0.37)
        assert torch.equal(net(x, scalar), unet(x, scalar * 999).sample)


def test_a_checkpoint_rebuilds_without_the_folder(saved, tmp_path):
    """hparams hold the architecture, not the folder: build_network + the weights give the same outputs."""
    unet, folder = saved
    net = DiffusersUNet((2, 8, 8), pretrained=str(folder)).eval()
    assert "pretrained" not in net.hparams and net.hparams["block_out_channels"] == [8, 16]
    moved = folder.rename(tmp_path / "moved")
    try:
        again = build_network(DiffusersUNet, json.loads(json.dumps(net.hparams))).eval()
        again.load_state_dict(net.state_dict())
        x, t = inputs()
        with torch.no_grad():
            assert torch.equal(again(x, t), net(x, t))
    finally:
        moved.rename(folder)


@pytest.mark.parametrize("check", NetworkSuite.checks())
def test_the_saved_architecture_passes_the_network_suite(saved, check):
    """The suite builds from the folder's own config keys (seeded construction needs fresh weights;
    loading from the folder is checked above)."""
    unet, _ = saved
    params = {k: v for k, v in architecture(unet.config).items() if k not in SHAPE_KEYS}
    NetworkSuite("diffusers_unet", params, shapes=[(2, 8, 8)]).run(check)


def test_a_pipeline_folder_gives_its_unet_and_its_timesteps(tmp_path):
    folder = ddpm_folder(tmp_path / "ddpm", channels=1, size=8, seed=2, num_train_timesteps=50)
    net = DiffusersUNet((1, 8, 8), pretrained=str(folder)).eval()
    unet = diffusers.UNet2DModel.from_pretrained(folder / "unet")
    assert net.timesteps == 50 and net.hparams["timesteps"] == 50
    x, t = inputs(channels=1)
    with torch.no_grad():
        assert torch.equal(net(x, t), unet(x, t * 49).sample)


@pytest.mark.parametrize("set_alpha_to_one", [False, True])
def test_diffusers_ddim_scheduler_equals_sbcore_ddim(saved, set_alpha_to_one):
    """DDIMScheduler(eta = 0, trailing spacing) on timesteps 999, 899, ..., 99 and sbcore's DDIM on the same
    times i / 999 of VP steps 1000 (diffusers' default linear betas). diffusers' last step goes to
    alphas_cumprod[0] (t = 0) or, with set_alpha_to_one, to abar = 1: the predicted x0 itself, which is
    sbcore's reference_compat landing step."""
    unet, folder = saved
    net = DiffusersUNet((2, 8, 8), pretrained=str(folder)).eval()
    scheduler = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=set_alpha_to_one,
                                        timestep_spacing="trailing")
    scheduler.set_timesteps(10)
    process = VPDiffusion(steps=1000)
    assert torch.allclose(process.discrete_betas().float(), scheduler.betas, rtol=1e-6, atol=0)
    x, _ = inputs(n=3, seed=5)
    with torch.no_grad():
        want = x.clone()
        for timestep in scheduler.timesteps:
            want = scheduler.step(unet(want, timestep).sample, timestep, want, eta=0.0).prev_sample
        index = scheduler.timesteps.tolist()
        assert index == list(range(999, 0, -100))
        last = index[-1] if set_alpha_to_one else 0  # the landing step repeats the last time
        grid = torch.tensor([*index, last]) / 999
        sampler = DDIM(steps=len(grid), reference_compat=True) if set_alpha_to_one else DDIM(steps=len(grid) - 1)
        got = sampler.sample(Predictor(net, process, "backward", "eps"), x, grid)
    assert got.nfe == 10
    scale = float(want.abs().max())
    assert float((got.x - want).abs().max()) <= 1e-5 * scale


def test_bad_configurations_say_what_is_wrong(saved, tmp_path):
    _, folder = saved
    with pytest.raises(ValueError, match="did you mean 'block_out_channels'"):
        DiffusersUNet((1, 8, 8), block_out_channel=[8])
    with pytest.raises(ValueError, match="'in_channels' is set from the data shape"):
        DiffusersUNet((1, 8, 8), in_channels=3)
    with pytest.raises(ValueError, match="maps 2 to 2 channels but the data has 3"):
        DiffusersUNet((3, 8, 8), pretrained=str(folder))
    with pytest.raises(ValueError, match="layers_per_block=2 but .* has layers_per_block=1"):
        DiffusersUNet((2, 8, 8), pretrained=str(folder), layers_per_block=2)
    with pytest.raises(UserError, match="no such folder"):
        DiffusersUNet((2, 8, 8), pretrained=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="neither a diffusers model folder"):
        DiffusersUNet((2, 8, 8), pretrained=str(tmp_path))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        DiffusersUNet((4,))


def test_pickled_weights_are_not_read(saved, tmp_path):
    """A folder holding only a pickle (.bin) is refused: weights come from safetensors only."""
    unet, _ = saved
    unet.save_pretrained(tmp_path / "bin", safe_serialization=False)
    with pytest.raises(UserError, match="safetensors"):
        DiffusersUNet((2, 8, 8), pretrained=str(tmp_path / "bin"))


def test_without_diffusers_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'sbcore\[diffusers\]'"):
        get_plugins().registry.get("network", "diffusers_unet")((1, 8, 8))
