"""DDIM's eta and clip_denoised, the cosine schedule and respacing strings against guided-diffusion's numbers.

tests/fixtures/guided_diffusion.json holds numbers produced by openai/guided-diffusion at 22e0df8 (run outside
this repository): `get_named_beta_schedule` for the cosine and linear schedules, `space_timesteps` for
several respacing strings, and single `GaussianDiffusion.ddim_sample` / `SpacedDiffusion` steps with eta > 0,
with and without clip_denoised, from fixed x, eps (the model's output) and noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sbcore.process import VPDiffusion
from sbcore.sampler import Predictor
from sbcore.sampler.ddim import DDIM
from sbcore.sampler.grids import respacing_count, space_timesteps

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "guided_diffusion.json").read_text())
DT = torch.float64


@pytest.mark.parametrize("steps", sorted(FIXTURES["cosine_betas"], key=int))
def test_cosine_betas(steps):
    want = torch.tensor(FIXTURES["cosine_betas"][steps], dtype=DT)
    assert torch.allclose(VPDiffusion(steps=int(steps), schedule="cosine").discrete_betas(), want, rtol=1e-13, atol=0)


def test_linear_betas_and_the_cosine_abar():
    linear = VPDiffusion(steps=1000).discrete_betas()
    assert torch.allclose(linear, torch.tensor(FIXTURES["linear_betas_1000"], dtype=DT), rtol=1e-13, atol=0)
    process = VPDiffusion(steps=1000, schedule="cosine")
    abar = torch.cumprod(1 - torch.tensor(FIXTURES["cosine_betas"]["1000"], dtype=DT), 0)
    t = torch.arange(1000, dtype=DT) / 999
    assert torch.allclose(process.alpha_bar(t), abar, rtol=1e-9, atol=1e-300)
    with pytest.raises(ValueError, match="cosine is guided-diffusion's discrete schedule"):
        VPDiffusion(schedule="cosine")


@pytest.mark.parametrize("case", FIXTURES["space_timesteps"], ids=lambda c: f"{c['n']}-{c['spec']}")
def test_space_timesteps(case):
    kept = space_timesteps(case["n"], case["spec"])
    assert kept == case["kept"]
    assert respacing_count(case["spec"]) == len(kept)
    # as a sampler's grid: the kept times from the noise end down to the data end, and the steps they imply
    sampler = DDIM(grid=case["spec"], reference_compat=True)
    assert sampler.steps == sampler.nfe() == len(kept)
    plain = DDIM(grid=case["spec"])
    grid = plain.time_grid(VPDiffusion(steps=case["n"], schedule="cosine"), "backward", dtype=DT)
    assert torch.allclose(grid * (case["n"] - 1), torch.tensor(kept[::-1], dtype=DT), atol=1e-9)
    assert plain.steps == len(kept) - 1


@pytest.mark.parametrize("case", FIXTURES["space_timesteps_errors"], ids=lambda c: c["spec"])
def test_space_timesteps_refuses_what_the_reference_refuses(case):
    with pytest.raises(ValueError, match="section"):
        space_timesteps(case["n"], case["spec"])


def test_bad_respacing_strings_and_step_overrides():
    with pytest.raises(ValueError, match="ddimN"):
        DDIM(grid="ddimx")
    with pytest.raises(ValueError, match="comma-separated section counts"):
        DDIM(grid="fast")
    sampler = DDIM(grid="ddim50")
    with pytest.raises(ValueError, match="a respacing string fixes the steps"):
        sampler.time_grid(VPDiffusion(steps=1000), "backward", 10)
    with pytest.raises(ValueError, match="no integer stride"):
        space_timesteps(1000, "ddim999")
    assert DDIM(grid="250").steps == 249


def _step_id(c: dict) -> str:
    return f"{c['schedule']}-{c['respacing']}-{c['timestep']}-eta{c['eta']}-clip{c['clip_denoised']}"


@pytest.mark.parametrize("case", FIXTURES["ddim_steps"], ids=_step_id)
def test_one_ddim_step_matches_guided_diffusion(case, monkeypatch):
    """x_prev from (x, eps, noise) at the kept timestep and the previous kept one, as `ddim_sample` computes it
    (to 1e-5: the reference casts its float64 coefficient tables to float32 when it reads them, `_extract_into_tensor`;
    the noise term sigma z and the clipped x0 that eta and clip_denoised change are of order one here)."""
    x, eps, noise = (torch.tensor(case[k], dtype=DT) for k in ("x", "eps", "noise"))
    process = VPDiffusion(steps=case["T"], schedule=case["schedule"])
    monkeypatch.setattr(process, "noise_like", lambda like: noise)
    sampler = DDIM(eta=case["eta"], clip_denoised=case["clip_denoised"])
    model = Predictor(lambda y, t: eps, process, "backward", "eps")
    t0 = torch.full((4,), case["timestep"] / (case["T"] - 1), dtype=DT)
    t1 = torch.full((4,), case["prev_timestep"] / (case["T"] - 1), dtype=DT)
    x_prev, estimate = sampler.step(model, x, t0, t1, (t1 - t0).abs()[0], last=False)
    assert torch.allclose(sampler.ends(estimate)[1], torch.tensor(case["pred_xstart"], dtype=DT), rtol=1e-5, atol=1e-5)
    assert torch.allclose(x_prev, torch.tensor(case["sample"], dtype=DT), rtol=1e-5, atol=1e-5)


def test_eta_is_refused_where_it_has_no_meaning():
    process = VPDiffusion(steps=100)
    sampler = DDIM(steps=4, eta=0.5)
    x = torch.randn(3, 2, dtype=DT)
    model = Predictor(lambda y, t: y, process, "forward", "eps")
    with pytest.raises(ValueError, match="eta > 0 decodes a VP diffusion"):
        sampler.sample(model, x, sampler.time_grid(process, "forward", dtype=DT))
    with pytest.raises(ValueError, match="eta must be >= 0"):
        DDIM(eta=-1)


def test_clip_denoised_encoding_rederives_eps_from_the_clipped_x0():
    """Encoding (forward) with clip_denoised clamps x0_hat and re-derives eps, as ddim_reverse_sample does."""
    process = VPDiffusion(steps=100)
    x = 3 * torch.randn(6, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(6, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    sampler = DDIM(steps=3, clip_denoised=True)
    t = torch.full((6,), 0.5, dtype=DT)
    estimate = Predictor(lambda y, s: eps, process, "forward", "eps")(x, t)
    x0, eps_hat = sampler.ends(estimate)
    a, b, _ = process.coefficients(t[:1])
    assert float(x0.abs().max()) <= 1
    assert torch.allclose(a * x0 + b * eps_hat, x)  # still on the path through x
    free = DDIM(steps=3).ends(estimate)
    assert not torch.allclose(free[0], x0)
