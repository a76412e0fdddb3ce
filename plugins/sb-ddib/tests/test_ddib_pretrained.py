"""diffusers DDPM folders as DDIB domains: `sbcore translate` between two of them, and the predictions
diffusers schedulers name (eps, x0, v) converted to eps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sb_ddib.method import DDIBConfig, EpsModel
from sb_ddib.pretrained import is_diffusers_folder, load_diffusers_domain
from sb_ddib.translate import TranslateOptions, translate_runs

from sbcore.cli import main
from sbcore.options import parse_options
from sbcore.process import VPDiffusion, expand_t
from sbcore.testing.diffusers import ddpm_folder

pytest.importorskip("diffusers", reason="diffusers is in the test extra")
torch.set_num_threads(1)


def test_translate_between_two_diffusers_ddpm_folders(tmp_path, capsys):
    """The acceptance command: two tiny DDPM pipelines saved by diffusers, n=64 steps=20, the cycle error reported."""
    a = ddpm_folder(tmp_path / "a", channels=3, size=8, seed=1, scale=0.1)
    b = ddpm_folder(tmp_path / "b", channels=3, size=8, seed=2, scale=0.1)
    out = tmp_path / "out"
    assert main(["translate", f"source={a}", f"target={b}", "n=64", "steps=20", f"out={out}", "device=cpu"]) == 0
    printed = capsys.readouterr().out
    assert "cycle L2 (source -> target -> source): mean" in printed and "NFE 20 per solve" in printed
    record = json.loads((out / "translation.json").read_text())
    assert record["n"] == 64 and record["nfe_per_solve"] == 20
    assert record["differences"] == [f"network.pretrained: {a} vs {b}"]
    stats = record["cycle_l2"]
    assert all(np.isfinite(v) and v > 0 for v in stats.values())
    assert stats["mean"] <= stats["p99"] <= stats["max"]
    arrays = np.load(out / "translation.npz")
    assert arrays["source"].shape == arrays["target"].shape == arrays["cycle"].shape == (64, 3, 8, 8)
    assert abs(record["latent_std"] - 1) < 0.2  # encoding the model's own samples gives back noise-like latents
    assert (out / "target.png").is_file()


def test_zero_models_translate_exactly(tmp_path):
    """UNets whose output is 0 predict eps = 0: DDIM then scales x by a(t1)/a(t0) each step, so encoding with one
    and decoding with the other is the identity, and the cycle error is float rounding."""
    a = ddpm_folder(tmp_path / "a", channels=1, size=8, seed=1, scale=0.0, num_train_timesteps=100)
    b = ddpm_folder(tmp_path / "b", channels=1, size=8, seed=2, scale=0.0, num_train_timesteps=100)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "x.npy", x.numpy())
    items = [f"source={a}", f"target={b}", f"input={tmp_path / 'x.npy'}", "steps=5", "device=cpu",
             f"out={tmp_path / 'out'}"]
    record = translate_runs(parse_options("sbcore translate", TranslateOptions, items))
    arrays = np.load(tmp_path / "out" / "translation.npz")
    assert np.allclose(arrays["target"], x.numpy(), rtol=0, atol=1e-4)
    assert record["cycle_l2"]["max"] < 1e-3
    process = VPDiffusion(0.01, 2.0, steps=100)  # diffusers' default betas 1e-4 .. 0.02 at 100 steps
    abar_end = process.alpha_bar(torch.tensor([0.0, 1.0], dtype=torch.float64))
    scale = float((abar_end[1] / abar_end[0]).sqrt())
    assert np.allclose(arrays["latent"], x.numpy() * scale, rtol=1e-4, atol=1e-6)


def test_a_folder_maps_to_a_ddib_model(tmp_path):
    folder = ddpm_folder(tmp_path / "v", channels=2, size=4, seed=3, num_train_timesteps=40, beta_start=0.002,
                         beta_end=0.04, prediction_type="v_prediction")
    assert is_diffusers_folder(folder) and not is_diffusers_folder(tmp_path)
    trainer = load_diffusers_domain(folder, "cpu")
    assert trainer.shape == (2, 4, 4) and trainer.method.predict == "v" and not trainer.method.eps_skip
    assert trainer.process.steps == 40 and abs(trainer.process.beta_max - 1.6) < 1e-12
    assert trainer.draw("x0", 3, torch.Generator().manual_seed(0)).shape == (3, 2, 4, 4)


@pytest.mark.parametrize("predict", ["x0", "v"])
def test_x0_and_v_outputs_convert_to_the_same_eps(predict):
    """A network giving the exact eps of Gaussian data, re-expressed as x0 or v, gives that eps back."""
    process = VPDiffusion(steps=100)
    mean, std = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.7
    eps = process.gaussian_eps(mean, std)

    def network(x, t):
        a, b, _ = process.coefficients(t)
        a, b, e = expand_t(a, x), expand_t(b, x), eps(x, t)
        x0 = (x - b * e) / a
        return x0 if predict == "x0" else a * e - b * x0

    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    assert torch.allclose(EpsModel(network, process, False, predict)(x, t), eps(x, t), rtol=1e-10, atol=1e-12)


def test_eps_skip_is_refused_with_another_prediction():
    with pytest.raises(ValueError, match="with predict: v set eps_skip: false"):
        DDIBConfig(predict="v")
