"""diffusers' DDPM/DDIM scheduler configs and ``process: vp``, in both directions.

A scheduler with N = ``num_train_timesteps`` and betas from ``beta_schedule`` ``linear`` or
``scaled_linear`` between ``beta_start`` and ``beta_end`` is ``{kind: vp, steps: N, beta_min: N beta_start,
beta_max: N beta_end, schedule: ...}`` (`sbcore.process.vp`: the j-th discrete beta is beta(j/(N-1)) / N),
so alphas_cumprod[i] is abar at t = i / (N - 1) (the time convention of `sbcore.network.diffusers_unet`).
``prediction_type`` names what the UNet outputs: ``epsilon`` -> eps, ``sample`` -> x0, ``v_prediction`` -> v
(v = sqrt(abar) eps - sqrt(1 - abar) x0, Salimans & Ho 2022, Appendix D). Schedules sbcore has no closed form
for (``squaredcos_cap_v2``, ``trained_betas``, zero-SNR rescaling) are refused, never approximated.
"""

from __future__ import annotations

import math
from typing import Any

from sbcore.errors import UserError
from sbcore.process.vp import VPDiffusion

#: diffusers' prediction_type -> the prediction named in sbcore's configs (sb-ddib's ``method.predict``).
PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
#: VPDiffusion's defaults: guided-diffusion's linear betas 1e-4 .. 0.02 at 1000 steps.
DEFAULT_RATES = (0.1, 20.0)


def process_from_scheduler(config: dict[str, Any], where: str = "scheduler") -> tuple[dict[str, Any], str]:
    """(the ``process:`` section, the prediction) of a scheduler config dict (``scheduler_config.json``)."""
    if config.get("trained_betas") is not None:
        raise UserError(f"{where}: trained_betas (a tabulated schedule) cannot be mapped onto process: vp")
    if config.get("rescale_betas_zero_snr"):
        raise UserError(f"{where}: rescale_betas_zero_snr is not supported by process: vp")
    schedule = config.get("beta_schedule", "linear")
    if schedule not in ("linear", "scaled_linear"):
        raise UserError(f"{where}: beta_schedule {schedule!r} is not supported by process: vp "
                        "(supported: linear, scaled_linear)")
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise UserError(f"{where}: prediction_type {prediction!r} is not one of {', '.join(PREDICTIONS)}")
    steps = int(config.get("num_train_timesteps", 1000))
    rates = (float(config.get("beta_start", 1e-4)) * steps, float(config.get("beta_end", 0.02)) * steps)
    section: dict[str, Any] = {"kind": "vp", "steps": steps}
    default = all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(rates, DEFAULT_RATES, strict=True))
    if schedule != "linear" or not default:
        section.update(beta_min=rates[0], beta_max=rates[1])
    if schedule != "linear":
        section["schedule"] = schedule
    return section, PREDICTIONS[prediction]


def scheduler_from_process(process: VPDiffusion, predict: str) -> dict[str, Any]:
    """DDPMScheduler's constructor arguments for a discrete VP process and a prediction (eps, x0, v);
    x0 is never clipped (sbcore's samplers do not clip)."""
    if not isinstance(process, VPDiffusion) or process.steps is None:
        raise UserError(f"a diffusers scheduler needs process: vp with steps: N (a discrete schedule), got {process!r}")
    names = {v: k for k, v in PREDICTIONS.items()}
    if predict not in names:
        raise UserError(f"a diffusers scheduler needs a prediction of {', '.join(names)}, got {predict!r}")
    n = process.steps
    return {"num_train_timesteps": n, "beta_start": process.beta_min / n, "beta_end": process.beta_max / n,
            "beta_schedule": process.schedule, "prediction_type": names[predict], "clip_sample": False}
