"""diffusers' scheduler configs map onto process: vp exactly (diffusers' own betas and alphas_cumprod as the oracle)."""

from __future__ import annotations

import pytest
import torch

from sbcore.config import ProcessSpec
from sbcore.errors import UserError
from sbcore.plugins import get_plugins
from sbcore.process import VPDiffusion
from sbcore.process.diffusers_schedule import process_from_scheduler, scheduler_from_process

diffusers = pytest.importorskip("diffusers", reason="diffusers is in the test extra")
REGISTRY = get_plugins().registry


def build(section):
    return ProcessSpec(section["kind"], {k: v for k, v in section.items() if k != "kind"}).build(REGISTRY)


@pytest.mark.parametrize(("kwargs", "predict"), [
    ({}, "eps"),
    ({"num_train_timesteps": 200, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
      "prediction_type": "v_prediction"}, "v"),
    ({"num_train_timesteps": 50, "beta_start": 0.001, "beta_end": 0.05, "prediction_type": "sample"}, "x0"),
])
def test_a_scheduler_is_a_vp_process_with_its_alphas_cumprod(kwargs, predict):
    scheduler = diffusers.DDPMScheduler(**kwargs)
    section, got = process_from_scheduler(dict(scheduler.config))
    process = build(section)
    n = scheduler.config.num_train_timesteps
    assert got == predict and section["steps"] == n
    assert torch.allclose(process.discrete_betas(), scheduler.betas.double(), rtol=1e-6, atol=0)
    t = torch.arange(n, dtype=torch.float64) / (n - 1)  # index i sits at t = i / (N - 1)
    assert torch.allclose(process.alpha_bar(t), scheduler.alphas_cumprod.double(), rtol=2e-5, atol=0)


def test_the_default_scheduler_is_the_default_vp_section():
    """diffusers' DDPM defaults are guided-diffusion's linear betas at 1000 steps: process {kind: vp, steps: 1000},
    the same section a ddib run writes, so translate sees one latent convention."""
    section, predict = process_from_scheduler(dict(diffusers.DDPMScheduler().config))
    assert section == {"kind": "vp", "steps": 1000} and predict == "eps"


@pytest.mark.parametrize("predict", ["eps", "x0", "v"])
def test_process_to_scheduler_round_trips(predict):
    process = VPDiffusion(beta_min=0.17, beta_max=8.5, steps=300, schedule="scaled_linear")
    scheduler = diffusers.DDPMScheduler(**scheduler_from_process(process, predict))
    section, got = process_from_scheduler(dict(scheduler.config))
    again = build(section)
    assert got == predict and repr(again) == repr(process)
    assert torch.allclose(again.discrete_betas(), process.discrete_betas(), rtol=1e-12)


@pytest.mark.parametrize(("config", "message"), [
    ({"beta_schedule": "squaredcos_cap_v2"}, "beta_schedule 'squaredcos_cap_v2' is not supported"),
    ({"trained_betas": [0.1, 0.2]}, "trained_betas"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
    ({"prediction_type": "flow"}, "prediction_type 'flow'"),
])
def test_schedules_without_a_closed_form_are_refused(config, message):
    with pytest.raises(UserError, match=message):
        process_from_scheduler(config)


def test_only_a_discrete_vp_process_has_a_scheduler():
    with pytest.raises(UserError, match="steps: N"):
        scheduler_from_process(VPDiffusion(), "eps")
    with pytest.raises(UserError, match="prediction of eps, x0, v"):
        scheduler_from_process(VPDiffusion(steps=10, beta_max=5.0), "drift")
