"""The core's samplers, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from typing import Any

from sbcore.hookspecs import hookimpl
from sbcore.registry import Registry
from sbcore.sampler.adaptive import AdaptiveODE
from sbcore.sampler.ddim import DDIM, DDIMHeun, DPMSolverPP
from sbcore.sampler.exponential import ExponentialIntegrator
from sbcore.sampler.flow import ProbabilityFlow
from sbcore.sampler.integrators import EulerMaruyama, EulerODE, HeunODE


@hookimpl
def sbcore_register(registry: Registry) -> None:
    registry.add("sampler", "euler_maruyama", EulerMaruyama)
    registry.add("sampler", "euler", EulerODE)
    registry.add("sampler", "heun", HeunODE)
    registry.add("sampler", "ddim", DDIM)
    registry.add("sampler", "ddim_heun", DDIMHeun)
    registry.add("sampler", "exponential", ExponentialIntegrator)
    registry.add("sampler", "dpm_solver_pp", DPMSolverPP)
    registry.add("sampler", "adaptive_ode", AdaptiveODE)
    registry.add("sampler", "probability_flow", ProbabilityFlow)


@hookimpl
def sbcore_sample_options(run: Any) -> dict[str, tuple[type, str]] | None:
    """``label=K`` and ``guidance.scale=S`` / ``guidance.classifier=FILE`` for runs of a class-conditional network."""
    params = getattr(getattr(run.config, "network", None), "params", None) or {}
    if not (params.get("num_classes") or params.get("class_cond")):
        return None
    return {"label": (int, "the class to sample (a class-conditional network)"),
            "guidance": (dict, "guidance.scale=S: classifier-free scale (1: conditional, 0: unconditional); "
                               "with guidance.classifier=FILE.safetensors (sbcore import-weights) the classifier's")}
